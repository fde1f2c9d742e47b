//! The `data:` section: where the data is, how it is made long-tailed, augmented and loaded.

use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

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

/// The `data:` section.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Reader: a source's YAML name (`npe kinds` lists them).
    pub source: String,
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
    /// Label value ignored by segmentation losses and metrics. Default 255.
    #[serde(default = "default_ignore")]
    pub ignore_index: u8,
    /// What an unreadable image file does: `fail` (default: the error names it) or `skip`
    /// (every file is decoded once when the data loads; unreadable ones are left out and
    /// counted in the summary). Image folders and list files only.
    #[serde(default)]
    pub on_corrupt: OnCorrupt,
    /// Each source's own options, `data.<source name>: {...}` (e.g. `data.stare`), as JSON; the
    /// pipeline check parses each with its source's type and fills in the defaults. Written
    /// beside the shared fields, as in the YAML.
    #[serde(flatten, skip_deserializing)]
    pub options: BTreeMap<String, serde_json::Value>,
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

impl DataSpec {
    /// The shared fields (every other key of `data:` is a source's options section).
    pub const FIELDS: [&'static str; 13] = [
        "source",
        "root",
        "format",
        "num_classes",
        "classes",
        "train_list",
        "test_list",
        "long_tail",
        "augment",
        "normalize",
        "loader",
        "ignore_index",
        "on_corrupt",
    ];

    /// Stand-in used when the `data:` section has errors, so the rest can still be checked.
    pub fn placeholder() -> Self {
        Self::from_yaml("{source: synthetic}").expect("a valid built-in data section")
    }

    /// Split a `data:` mapping into its shared fields and the sources' options sections.
    pub fn split_options<V>(entries: Vec<(String, V)>) -> (Vec<(String, V)>, Vec<(String, V)>) {
        entries.into_iter().partition(|(k, _)| Self::FIELDS.contains(&k.as_str()))
    }

    /// Parse a `data:` section from YAML text outside a pipeline (tests, tools): the options
    /// sections are kept unchecked, as the pipeline loader keeps them.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let v: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let serde_yaml::Value::Mapping(m) = v else { return Err("the data section must be a mapping".into()) };
        let entries: Vec<(String, serde_yaml::Value)> =
            m.into_iter().map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v)).collect();
        let (shared, options) = Self::split_options(entries);
        let shared: serde_yaml::Mapping = shared.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let mut spec: DataSpec =
            serde_yaml::from_value(serde_yaml::Value::Mapping(shared)).map_err(|e| e.to_string())?;
        for (k, v) in options {
            spec.options.insert(k, serde_json::to_value(v).map_err(|e| e.to_string())?);
        }
        Ok(spec)
    }
}

fn default_ignore() -> u8 {
    255
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_lists_what_serde_accepts() {
        let mut d = figment::value::Dict::new();
        d.insert("__probe__".into(), figment::value::Value::from(1));
        let err = figment::value::Value::from(d).deserialize::<DataSpec>().unwrap_err();
        let accepted: Vec<String> = err
            .into_iter()
            .find_map(|e| match e.kind {
                figment::error::Kind::UnknownField(_, expected) => {
                    Some(expected.iter().map(|s| s.to_string()).collect())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(accepted, DataSpec::FIELDS.to_vec());
    }

    #[test]
    fn options_sections_are_kept_beside_the_shared_fields() {
        let s = DataSpec::from_yaml("{source: stare, root: /x, stare: {annotator: vk}}").unwrap();
        assert_eq!(s.source, "stare");
        assert_eq!(s.options["stare"]["annotator"], "vk");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["stare"]["annotator"], "vk", "written flat, as in the YAML: {v}");
        assert!(DataSpec::from_yaml("{source: stare, rot: /x}").unwrap().options.contains_key("rot"));
    }
}
