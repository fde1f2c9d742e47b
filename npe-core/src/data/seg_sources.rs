//! Segmentation sources: `seg_digits` (semi-synthetic), STARE and ADE20K.

use super::dataset::Dataset;
use super::error::{DataError, Result};
use crate::spec::DataSpec;
use std::path::Path;

/// Load a segmentation source.
pub fn load(spec: &DataSpec, _root: &Path, _seed: u64) -> Result<Dataset> {
    Err(DataError::Invalid(format!(
        "segmentation source `{}` is not available yet",
        super::describe::source_name(spec.source)
    )))
}
