//! Data-parallel training on a backend's collective engine (libtorch's c10d with Gloo on
//! `--backend tch`; npe has no collective layer of its own): the [`World`] a process belongs to,
//! read from torchrun's variables; how a global batch is split over ranks; and the collective
//! steps of the executor — bucketed gradient sums, state broadcast, the same-pipeline check and
//! failure reports that name the rank that stopped — written once over
//! [`DistOps`](crate::tensor::DistOps).
//!
//! `train.batch_size` is the global batch: rank `r` of `W` trains on its contiguous `1/W` of
//! every batch and back-propagates its share of the global batch's loss (its images, or its
//! labelled pixels), and the gradients are summed over ranks, so `W` workers take the
//! same steps as one (up to float rounding) and a run resumes with any world size.

mod collective;
pub mod heartbeat;
mod world;

pub use collective::{all_reduce_sum, broadcast, check_same_pipeline, diagnose};
pub use heartbeat::Heartbeat;
pub use world::World;
