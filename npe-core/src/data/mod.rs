//! Data: the sources (one file each under `sources/`), readers for the on-disk formats,
//! long-tailed sampling, augmentation and the loader.
//! Data never touches a tensor library; backends receive ready host batches.

pub mod augment;
pub mod cifar;
mod dataset;
mod describe;
mod error;
pub mod folder;
pub mod fov;
pub mod idx;
mod load;
pub mod loader;
pub mod longtail;
pub mod pickle;
pub mod seg;
pub mod source;
pub mod sources;
pub(crate) mod verify;

pub use dataset::{Dataset, DenseImages, MaskMap, Masks, Pixels, Provenance, Split};
pub use describe::{DataSig, describe};
pub use error::{DataError, Result};
pub use load::{SplitKind, data_home, default_normalization, load, loader, resolve_root};
pub use loader::{BatchIter, Loader, LoaderOptions};
pub use source::{Source, SourceDef};
pub use sources::mnist::FASHION_MNIST_DEB;
pub use verify::{Unreadable, verify};
