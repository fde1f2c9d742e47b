//! The tensor contract between the core and a backend.
//!
//! The core writes every node's math once, over [`Ops`]; a backend (burn, libtorch) implements
//! those operations on its own tensor type and nothing else. Tensors cross the boundary as the
//! opaque [`Tensor`] handle: the backend puts its own tensor in, and takes it back out.

mod guard;
mod handle;
mod ops;
mod world;

pub use guard::{guarded, quiet_guarded_panics};
pub use handle::Tensor;
pub use ops::{
    AutodiffOps, BatchNormArgs, ConvOpts, CreationOps, DistOps, FusedOps, Grads, InplaceOps, MathOps, NnOps, Ops,
    PoolOpts, Precision, PrecisionOps, SharedStore,
};
pub use world::World;

pub use crate::error::TensorError;

/// Result of a tensor operation.
pub type TResult<T> = Result<T, TensorError>;
