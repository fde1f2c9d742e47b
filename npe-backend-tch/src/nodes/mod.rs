//! Node implementations, one file per family.

pub mod adjust;
pub mod backbone;
pub mod dense;
pub mod head;
pub mod loss;
