//! Data: readers for the on-disk formats, long-tailed sampling, augmentation and the loader.
//! Data never touches a tensor library; backends receive ready host batches.

mod describe;

pub use describe::{DataSig, describe, source_name};
