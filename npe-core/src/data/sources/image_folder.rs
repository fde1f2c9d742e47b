//! `source: image_folder`: `root/train/<class>/*.{jpg,png}` and `root/test/<class>/…`, read by
//! [`crate::data::folder`] (classes: `data.classes`, else the sorted folder names).

use crate::data::dataset::{Pixels, Provenance, Split};
use crate::data::error::Result;
use crate::data::folder::{self, FileSplit};
use crate::data::source::{ClassSplits, Loaded, Located, Native, NoOptions, SourceDef};
use crate::spec::DataSpec;
use std::path::Path;
use std::sync::Arc;

/// A file split as a split of files decoded by the loader.
pub(crate) fn files(s: FileSplit) -> Split {
    Split::new(Pixels::Files { paths: Arc::new(s.paths), channels: 3 }, s.labels, None)
}

/// Image files of any size: the class count comes from the pipeline, the size from the
/// transforms.
pub(crate) fn native_of_files(name: &str, spec: &DataSpec) -> std::result::Result<Native, Located> {
    let classes = spec.classes.as_ref().map(Vec::len).or(spec.num_classes);
    if classes.is_none() {
        return Err((
            "data.source".into(),
            format!("`{name}` needs `num_classes` (or `classes`) so the pipeline can be checked without reading the data"),
        ));
    }
    Ok(Native { channels: 3, size: None, classes })
}

/// The source.
pub struct ImageFolder;

impl SourceDef for ImageFolder {
    const NAME: &'static str = "image_folder";
    const SUMMARY: &'static str = "root/train/<class>/*.{jpg,png} and root/test/<class>/…";
    type Options = NoOptions;

    fn native(_: &NoOptions, spec: &DataSpec) -> std::result::Result<Native, Located> {
        native_of_files(Self::NAME, spec)
    }
    fn load(_: &NoOptions, spec: &DataSpec, root: &Path, _seed: u64) -> Result<Loaded> {
        let classes = match &spec.classes {
            Some(c) => c.clone(),
            None => folder::class_dirs(&root.join("train"))?,
        };
        let train = files(folder::read_folder_split(root, "train", &classes)?);
        let test = files(folder::read_folder_split(root, "test", &classes)?);
        Ok(Loaded::Classes(ClassSplits {
            name: "image folder".into(),
            origin: root.display().to_string(),
            provenance: Provenance::Real,
            classes,
            train,
            test,
            channels: 3,
        }))
    }
}
