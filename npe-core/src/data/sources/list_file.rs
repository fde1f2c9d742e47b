//! `source: list_file`: list files of `relative/path label` lines under `root`
//! (`data.train_list`, `data.test_list`), the layout of ImageNet-LT, Places-LT and iNaturalist.

use super::image_folder::{files, native_of_files};
use crate::data::dataset::Provenance;
use crate::data::error::{DataError, Result};
use crate::data::folder;
use crate::data::source::{ClassSplits, Loaded, Located, Native, NoOptions, SourceDef};
use crate::spec::DataSpec;
use std::path::{Path, PathBuf};

/// The source.
pub struct ListFile;

impl SourceDef for ListFile {
    const NAME: &'static str = "list_file";
    const SUMMARY: &'static str = "list files of `relative/path label` lines (ImageNet-LT, Places-LT, iNaturalist)";
    type Options = NoOptions;

    fn native(_: &NoOptions, spec: &DataSpec) -> std::result::Result<Native, Located> {
        native_of_files(Self::NAME, spec)
    }
    fn load(_: &NoOptions, spec: &DataSpec, root: &Path, _seed: u64) -> Result<Loaded> {
        let n = spec
            .classes
            .as_ref()
            .map(Vec::len)
            .or(spec.num_classes)
            .ok_or_else(|| DataError::Invalid("`list_file` needs `data.num_classes`".into()))?;
        let need = |p: &Option<PathBuf>, which: &str| {
            p.clone().ok_or_else(|| {
                DataError::Invalid(format!("`list_file` needs `data.{which}_list` (lines of `relative/path label`)"))
            })
        };
        let train = files(folder::read_list(root, &need(&spec.train_list, "train")?, n)?);
        let test = files(folder::read_list(root, &need(&spec.test_list, "test")?, n)?);
        Ok(Loaded::Classes(ClassSplits {
            name: "list files".into(),
            origin: root.display().to_string(),
            provenance: Provenance::Real,
            classes: spec.classes.clone().unwrap_or_else(|| (0..n).map(|i| format!("class_{i}")).collect()),
            train,
            test,
            channels: 3,
        }))
    }
}
