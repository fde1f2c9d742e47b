//! From a `data:` section to a [`Dataset`]: find the source and its files, read them with the
//! source's loader, apply the long tail, and build the loaders.

use super::augment::Transform;
use super::dataset::{Dataset, Pixels, Split};
use super::describe::describe;
use super::error::{DataError, Result};
use super::loader::{Loader, LoaderOptions};
use super::longtail;
use super::source::{self, ClassSplits, Loaded};
use crate::spec::{DataSpec, Profile};
use std::path::PathBuf;

/// `NPE_DATA_HOME`, else `./data`: where helper scripts put downloaded data.
pub fn data_home() -> PathBuf {
    std::env::var_os("NPE_DATA_HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("data"))
}

/// The folder to read for `spec`: `data.root`, else the source's standard location.
pub fn resolve_root(spec: &DataSpec) -> Result<PathBuf> {
    match &spec.root {
        Some(r) => Ok(r.clone()),
        None => source::of_data(spec)?.default_root(spec),
    }
}

/// Usual normalisation statistics of a source (mean, std per channel; a single value is
/// repeated for every channel, ImageNet's for unknown sources).
pub fn default_normalization(source_name: &str, channels: usize) -> (Vec<f32>, Vec<f32>) {
    let (m, s) = source::find(source_name).map_or(source::IMAGENET, |s| s.normalization());
    if m.len() == channels { (m.to_vec(), s.to_vec()) } else { (vec![m[0]; channels], vec![s[0]; channels]) }
}

/// Read the data of `spec` (both splits, long tail applied to train).
pub fn load(spec: &DataSpec, seed: u64) -> Result<Dataset> {
    let root = resolve_root(spec)?;
    match source::of_data(spec)?.load(spec, &root, seed)? {
        Loaded::Pixels(d) => Ok(d),
        Loaded::Classes(c) => finish(spec, c, seed),
    }
}

/// What every classification source gets: the class count checked, unreadable files left out
/// (`data.on_corrupt: skip`), the long tail applied and named.
fn finish(spec: &DataSpec, d: ClassSplits, seed: u64) -> Result<Dataset> {
    let ClassSplits { name, origin, provenance, classes, train, test, channels } = d;
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
        None => default_normalization(&spec.source, ds.channels),
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
