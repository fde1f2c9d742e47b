//! What a data source is: [`SourceDef`], one impl per source in `data/sources/` (its YAML name,
//! its own `data.<name>` options, what it fixes for the graph, its default root and
//! normalisation, and its loader). The core erases it to [`Source`] and finds it by name, the
//! way node kinds are found ([`crate::kind::NodeDef`]).

use super::dataset::{Dataset, Provenance, Split};
use super::error::{DataError, Result};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::spec::DataSpec;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// An error in the pipeline's terms: `(spec path, message)`.
pub type Located = (String, String);

/// What a source's format fixes for the graph, known before any file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Native {
    /// Image channels.
    pub channels: usize,
    /// Image size `[h, w]`, when every image of the format has it.
    pub size: Option<[usize; 2]>,
    /// Classes (segmentation: including background), when the format fixes them.
    pub classes: Option<usize>,
}

/// ImageNet statistics: the normalisation of sources that do not state their own.
pub const IMAGENET: (&[f32], &[f32]) = (&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]);

/// A classification source's splits as read, before the core checks the class count, leaves
/// out unreadable files (`data.on_corrupt`) and applies the long tail.
#[derive(Clone, Debug)]
pub struct ClassSplits {
    /// Name of the data set, e.g. `CIFAR-10`.
    pub name: String,
    /// Where it came from.
    pub origin: String,
    /// Real or generated.
    pub provenance: Provenance,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Training split.
    pub train: Split,
    /// Test split.
    pub test: Split,
    /// Image channels.
    pub channels: usize,
}

/// What a source's loader returns.
#[derive(Debug)]
pub enum Loaded {
    /// Image-level labels: the core finishes them (class count, unreadable files, long tail).
    Classes(ClassSplits),
    /// Per-pixel labels: finished by the source (its pixel counts, its own long tail if any).
    Pixels(Dataset),
}

/// A source without options of its own (`data.<name>` is then an unknown field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// One data source, defined once. Implement it for a unit struct in a file under
/// `data/sources/`; the build script registers it (nothing else lists the sources).
pub trait SourceDef: Send + Sync + 'static {
    /// The YAML `data.source`.
    const NAME: &'static str;
    /// One line for `npe kinds` and hints.
    const SUMMARY: &'static str;
    /// True when labels are per pixel.
    const SEGMENTATION: bool = false;
    /// Whether `data.<NAME>` holds [`Self::Options`] (false: [`NoOptions`]).
    const HAS_OPTIONS: bool = false;
    /// Usual normalisation (mean, std per channel, in [0, 1] units).
    const NORMALIZATION: (&'static [f32], &'static [f32]) = IMAGENET;
    /// The `data.<NAME>` options (serde, `deny_unknown_fields`, every field defaulted).
    type Options: Clone + Debug + Default + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// What the format fixes for the graph (without reading files).
    fn native(o: &Self::Options, spec: &DataSpec) -> std::result::Result<Native, Located>;
    /// Checks of the options against the rest of the section, before anything is read.
    fn check(_o: &Self::Options, _spec: &DataSpec, _classes: usize) -> std::result::Result<(), Located> {
        Ok(())
    }
    /// Where the data is when `data.root` is not set.
    fn default_root(_o: &Self::Options, _spec: &DataSpec) -> Result<PathBuf> {
        Err(no_root(Self::NAME))
    }
    /// Read both splits from `root` (the long tail is the core's for [`Loaded::Classes`]).
    fn load(o: &Self::Options, spec: &DataSpec, root: &Path, seed: u64) -> Result<Loaded>;
}

/// The error of a source without a standard install location and no `data.root`.
pub fn no_root(name: &str) -> DataError {
    DataError::NoRoot {
        source_name: name.into(),
        hint: "pass `--set data.root=PATH` (or set NPE_DATA__ROOT) to where the data is".into(),
    }
}

/// A [`SourceDef`] with its type erased.
pub trait Source: Send + Sync {
    /// The YAML name.
    fn name(&self) -> &'static str;
    /// One line for listings.
    fn summary(&self) -> &'static str;
    /// True when labels are per pixel.
    fn segmentation(&self) -> bool;
    /// Whether the source has a `data.<name>` options section.
    fn has_options(&self) -> bool;
    /// Usual normalisation.
    fn normalization(&self) -> (&'static [f32], &'static [f32]);
    /// The options of `spec`, filled with defaults, as JSON (`Err`: located).
    fn options(&self, spec: &DataSpec) -> std::result::Result<serde_json::Value, Located>;
    /// Parse `value` as this source's options, reporting located errors under `path`.
    fn parse_options(
        &self,
        value: &serde_json::Value,
        path: &str,
        loc: &crate::spec::Locator,
        diags: &mut Diagnostics,
    ) -> Option<serde_json::Value>;
    /// The option fields (for documentation checks and hints).
    fn option_fields(&self) -> Vec<String>;
    /// See [`SourceDef::native`].
    fn native(&self, spec: &DataSpec) -> std::result::Result<Native, Located>;
    /// See [`SourceDef::check`].
    fn check(&self, spec: &DataSpec, classes: usize) -> std::result::Result<(), Located>;
    /// See [`SourceDef::default_root`].
    fn default_root(&self, spec: &DataSpec) -> Result<PathBuf>;
    /// See [`SourceDef::load`].
    fn load(&self, spec: &DataSpec, root: &Path, seed: u64) -> Result<Loaded>;
}

/// The erasure of `S`.
pub struct Erased<S>(PhantomData<fn() -> S>);

impl<S> Erased<S> {
    /// The (zero-sized) erased source.
    pub const NEW: Self = Erased(PhantomData);
}

impl<S: SourceDef> Erased<S> {
    fn typed(&self, spec: &DataSpec) -> std::result::Result<S::Options, Located> {
        match spec.options.get(S::NAME) {
            None => Ok(S::Options::default()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| (format!("data.{}", S::NAME), e.to_string())),
        }
    }
    fn typed_data(&self, spec: &DataSpec) -> Result<S::Options> {
        self.typed(spec).map_err(|(p, m)| DataError::Invalid(format!("{p}: {m}")))
    }
}

impl<S: SourceDef> Source for Erased<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }
    fn summary(&self) -> &'static str {
        S::SUMMARY
    }
    fn segmentation(&self) -> bool {
        S::SEGMENTATION
    }
    fn has_options(&self) -> bool {
        S::HAS_OPTIONS
    }
    fn normalization(&self) -> (&'static [f32], &'static [f32]) {
        S::NORMALIZATION
    }
    fn options(&self, spec: &DataSpec) -> std::result::Result<serde_json::Value, Located> {
        let o = self.typed(spec)?;
        serde_json::to_value(o).map_err(|e| (format!("data.{}", S::NAME), e.to_string()))
    }
    fn parse_options(
        &self,
        value: &serde_json::Value,
        path: &str,
        loc: &crate::spec::Locator,
        diags: &mut Diagnostics,
    ) -> Option<serde_json::Value> {
        let v = match figment::value::Value::serialize(value) {
            Ok(v) => v,
            Err(e) => {
                diags.push(Diagnostic::error(loc.value(path), e.to_string()));
                return None;
            }
        };
        let typed: S::Options = crate::spec::parse_field(&v, path, loc, diags)?;
        serde_json::to_value(typed).ok()
    }
    fn option_fields(&self) -> Vec<String> {
        let mut d = figment::value::Dict::new();
        d.insert("__probe__".into(), figment::value::Value::from(1));
        let Err(err) = figment::value::Value::from(d).deserialize::<S::Options>() else { return vec![] };
        err.into_iter()
            .find_map(|e| match e.kind {
                figment::error::Kind::UnknownField(_, expected) => {
                    Some(expected.iter().map(|s| s.to_string()).collect())
                }
                _ => None,
            })
            .unwrap_or_default()
    }
    fn native(&self, spec: &DataSpec) -> std::result::Result<Native, Located> {
        S::native(&self.typed(spec)?, spec)
    }
    fn check(&self, spec: &DataSpec, classes: usize) -> std::result::Result<(), Located> {
        S::check(&self.typed(spec)?, spec, classes)
    }
    fn default_root(&self, spec: &DataSpec) -> Result<PathBuf> {
        S::default_root(&self.typed_data(spec)?, spec)
    }
    fn load(&self, spec: &DataSpec, root: &Path, seed: u64) -> Result<Loaded> {
        S::load(&self.typed_data(spec)?, spec, root, seed)
    }
}

/// Every built-in source, from the files of `data/sources/`.
pub fn all() -> &'static [&'static dyn Source] {
    super::sources::BUILTIN
}

/// The source named `name`.
pub fn find(name: &str) -> Option<&'static dyn Source> {
    all().iter().copied().find(|s| s.name() == name)
}

/// The source of `spec`, or the located error naming the known ones.
pub fn of(spec: &DataSpec) -> std::result::Result<&'static dyn Source, Located> {
    find(&spec.source).ok_or_else(|| {
        let names: Vec<&str> = all().iter().map(|s| s.name()).collect();
        let hint = did_you_mean(&spec.source, names.iter()).unwrap_or_else(|| format!("sources: {}", names.join(", ")));
        ("data.source".into(), format!("unknown data source `{}`; {hint}", spec.source))
    })
}

/// [`of`] as a data error (for code that reads data outside a pipeline check).
pub fn of_data(spec: &DataSpec) -> Result<&'static dyn Source> {
    of(spec).map_err(|(p, m)| DataError::Invalid(format!("{p}: {m}")))
}

/// The validation pass of the data section's source options: every `data.<key>` that is not
/// a shared field must be a source's options section; each is parsed with its source's type
/// (located errors) and replaced by its value with defaults filled in, and the chosen source's
/// section is added when absent, so what is recorded (fingerprints) says every option used.
pub fn resolve_options(spec: &mut DataSpec, loc: &crate::spec::Locator, diags: &mut Diagnostics) {
    let keys: Vec<String> = spec.options.keys().cloned().collect();
    for key in keys {
        let path = format!("data.{key}");
        let value = spec.options.remove(&key).expect("a listed key");
        match find(&key).filter(|s| s.has_options()) {
            Some(src) => {
                if let Some(v) = src.parse_options(&value, &path, loc, diags) {
                    spec.options.insert(key, v);
                }
            }
            None => {
                let mut candidates: Vec<String> = DataSpec::FIELDS.iter().map(|s| s.to_string()).collect();
                candidates.extend(all().iter().filter(|s| s.has_options()).map(|s| s.name().to_string()));
                let hint = did_you_mean(&key, candidates.iter())
                    .unwrap_or_else(|| format!("fields here are: {}", candidates.join(", ")));
                diags.push(
                    Diagnostic::error(loc.key(&path), format!("unknown field `{key}` in `data`")).with_hint(hint),
                );
            }
        }
    }
    if let Some(src) = find(&spec.source).filter(|s| s.has_options())
        && !spec.options.contains_key(src.name())
        && let Ok(v) = src.options(spec)
    {
        spec.options.insert(src.name().to_string(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_file_is_registered_once_with_a_summary() {
        let names: Vec<&str> = all().iter().map(|s| s.name()).collect();
        for n in
            ["synthetic", "cifar10", "cifar100", "fashion_mnist", "mnist", "image_folder", "list_file", "seg_digits"]
        {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "a name registered twice: {names:?}");
        assert!(all().iter().all(|s| !s.summary().is_empty()));
    }

    #[test]
    fn an_unknown_source_names_the_closest() {
        let spec = DataSpec::from_yaml("{source: cifar1}").unwrap();
        let (path, msg) = of(&spec).err().unwrap();
        assert_eq!(path, "data.source");
        assert!(msg.contains("unknown data source `cifar1`") && msg.contains("did you mean `cifar10`"), "{msg}");
    }

    #[test]
    fn options_of_a_source_come_with_defaults() {
        let spec = DataSpec::from_yaml("{source: stare, stare: {annotator: vk}}").unwrap();
        let v = find("stare").unwrap().options(&spec).unwrap();
        assert_eq!(v["annotator"], "vk");
        assert_eq!(v["train_images"], 10, "the default filled in: {v}");
        assert!(find("stare").unwrap().option_fields().contains(&"annotator".to_string()));
        assert!(find("cifar10").unwrap().option_fields().is_empty());
    }
}
