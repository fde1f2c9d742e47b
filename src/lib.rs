//! # npe
//!
//! Imbalance-aware deep learning with Neural Prior Estimation: declarative YAML pipelines,
//! validated as a DAG by [`npe_core`], executed by a backend chosen at build time (Cargo
//! features `burn`, `tch`) and at run time (`--backend`).
//!
//! A program that adds its own node kinds builds its own `npe` with [`Extensions`] and
//! [`cli::main_with`]; see `examples/custom_backbone.rs`.

pub mod backends;
pub mod cli;

pub use backends::{BackendChoice, Extensions};
pub use npe_core as core;
