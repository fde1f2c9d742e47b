//! # npe-core
//!
//! The backend-agnostic core of npe (Neural Prior Estimation for long-tailed learning):
//! pipeline specs, the validated pipeline graph (IR), datasets and long-tailed sampling, the
//! training loop and its schedules, metrics, checkpoints and reports. It depends on no tensor
//! library: backends implement [`backend::Executor`] and receive ready host batches.
//!
//! Data flows one way: YAML → [`spec::PipelineSpec`] → [`ir::Ir`] → a backend's executor.

#![warn(missing_docs)]

pub mod backend;
pub mod batch;
pub mod checkpoint;
pub mod data;
pub mod diag;
pub mod ir;
pub mod model;
pub mod nodes;
pub mod registry;
pub mod rng;
pub mod source;
pub mod spec;
pub mod train;

pub use diag::{Diagnostic, Diagnostics, Origin, Severity};
pub use registry::{CustomBackbone, Registry};
