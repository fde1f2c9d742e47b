//! # npe-core
//!
//! The backend-agnostic core of npe (Neural Prior Estimation for long-tailed learning):
//! pipeline specs, the validated pipeline graph (IR), datasets and long-tailed sampling, the
//! training loop and its schedules, metrics, checkpoints and reports. It depends on no tensor
//! library: every node's math is written once over [`tensor::Ops`], which backends implement.
//!
//! Data flows one way: YAML → [`spec::PipelineSpec`] → [`ir::Ir`] (validated DAG) →
//! [`exec::Plan`] (lowered) → [`exec::GraphExecutor`] on a backend's [`tensor::Ops`].
//!
//! Module layers, each using only those below it: `error`, `types`, `tensor`, `diag`, `source`, `rng`,
//! `batch` → `spec`, `backend`, `checkpoint` → `data`, `kind` → `metrics`, `nn` → `nodes` →
//! `registry` → `ir` → `exec` → `model` → `report` → `train`. `report` (summaries, tables,
//! studies, plots, TensorBoard) reads what runs wrote and is written through by `train`; it
//! never trains.

#![warn(missing_docs)]

pub mod backend;
pub mod batch;
pub mod checkpoint;
pub mod conformance;
pub mod data;
pub mod diag;
pub mod dist;
pub mod error;
pub mod exec;
pub mod export;
pub mod ir;
pub mod kind;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod nodes;
pub mod predict;
pub mod registry;
pub mod report;
pub mod rng;
pub mod source;
pub mod spec;
pub mod tensor;
pub mod train;
pub mod types;

pub use diag::{Diagnostic, Diagnostics, Origin, Severity};
pub use kind::NodeDef;
pub use registry::Registry;
