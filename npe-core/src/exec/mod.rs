//! Running a pipeline on a backend's tensor operations: the lowered plan, the parameter store,
//! the optimisers and the executor the training loop drives. Written once for every backend.

mod executor;
mod optim;
mod plan;
mod store;

pub use executor::GraphExecutor;
pub use optim::Optimizer;
pub use plan::Plan;
pub use store::Store;

use crate::backend::{Backend, BuildContext, ExecError, Executor};
use crate::ir::Ir;

/// Allocate the model of `ir` on `backend`'s device as `ctx` says.
pub fn build(backend: &dyn Backend, ir: &Ir, ctx: &BuildContext) -> Result<Box<dyn Executor>, ExecError> {
    let ops = backend.ops(ctx.device, ctx.threads)?;
    Ok(Box::new(GraphExecutor::new(ir, ctx, ops)?))
}
