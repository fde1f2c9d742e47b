//! Data: readers for the on-disk formats, long-tailed sampling, augmentation and the loader.
//! Data never touches a tensor library; backends receive ready host batches.

pub mod augment;
pub mod cifar;
mod dataset;
mod describe;
mod error;
pub mod folder;
pub mod idx;
mod load;
pub mod loader;
pub mod longtail;
pub mod pickle;
pub mod seg;
mod seg_sources;
pub mod synthetic;
pub(crate) mod verify;

pub use dataset::{Dataset, DenseImages, MaskMap, Masks, Pixels, Provenance, Split};
pub use describe::{DataSig, describe, source_name};
pub use error::{DataError, Result};
pub use load::{FASHION_MNIST_DEB, SplitKind, data_home, default_normalization, load, loader, resolve_root};
pub use loader::{BatchIter, Loader, LoaderOptions};
pub use verify::{Unreadable, verify};
