//! # npe-backend-burn
//!
//! Runs npe pipelines on [burn](https://burn.dev) 0.22: CPU through the `flex` backend, GPUs
//! through `cuda` / `wgpu` (Cargo features). The core hands over the validated graph, the
//! parameter layout and host batches; this crate owns tensors, autodiff and the SGD step.
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

/// The burn version this backend uses, for custom node implementations.
pub use burn;
pub use ctx::{Ctx, NodeCtx};
pub use custom::{BurnBackbone, CustomKinds};
pub use error::BurnError;
pub use executor::BurnExecutor;
pub use value::Act;

use npe_core::backend::{Backend, BuildContext, ExecError, Executor};
use npe_core::ir::Ir;

/// The burn backend, with the custom kinds a program registered.
#[derive(Clone, Default)]
pub struct BurnBackend {
    /// Implementations of user node kinds.
    pub custom: CustomKinds,
}

impl BurnBackend {
    /// A backend with custom kinds.
    pub fn new(custom: CustomKinds) -> Self {
        Self { custom }
    }
}

impl Backend for BurnBackend {
    fn name(&self) -> &'static str {
        "burn"
    }

    fn build(&self, ir: &Ir, ctx: &BuildContext) -> Result<Box<dyn Executor>, ExecError> {
        Ok(Box::new(BurnExecutor::new(ir, ctx, self.custom.clone())?))
    }
}
