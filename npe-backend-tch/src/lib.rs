//! # npe-backend-tch
//!
//! Runs npe pipelines on libtorch 2.13 through [tch](https://github.com/LaurentMazare/tch-rs)
//! 0.26, on CPU or CUDA. Same node semantics as the burn backend (parameter layout and
//! initial values come from the core; SGD with PyTorch semantics), so the two agree step by step.
//!
//! Add a node kind: one file under `nodes/` and one line in `graph.rs`'s dispatch.

mod ctx;
mod custom;
mod device;
mod error;
mod executor;
mod graph;
mod nodes;
mod optim;
mod params;
mod value;

pub use ctx::{Ctx, NodeCtx};
pub use custom::{CustomKinds, TchBackbone};
pub use error::TchBackendError;
pub use executor::TchExecutor;
/// The tch version this backend uses, for custom node implementations.
pub use tch;
pub use value::Act;

use npe_core::backend::{Backend, BuildContext, ExecError, Executor};
use npe_core::ir::Ir;

/// The libtorch backend, with the custom kinds a program registered.
#[derive(Clone, Default)]
pub struct TchBackend {
    /// Implementations of user node kinds.
    pub custom: CustomKinds,
}

impl TchBackend {
    /// A backend with custom kinds.
    pub fn new(custom: CustomKinds) -> Self {
        Self { custom }
    }
}

impl Backend for TchBackend {
    fn name(&self) -> &'static str {
        "tch"
    }

    fn build(&self, ir: &Ir, ctx: &BuildContext) -> Result<Box<dyn Executor>, ExecError> {
        Ok(Box::new(TchExecutor::new(ir, ctx, self.custom.clone())?))
    }
}
