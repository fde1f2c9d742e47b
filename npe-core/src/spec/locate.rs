//! Mapping a dotted spec path to where its value came from (file position, env var, `--set`).

use super::yaml_map::YamlMap;
use crate::diag::Origin;
use crate::source::SourceText;
use std::collections::BTreeMap;

/// Names of our figment providers, used to tell where a value came from.
pub(crate) const FILE_PROVIDER: &str = "pipeline file";
pub(crate) const ENV_PROVIDER: &str = "NPE_ environment";
pub(crate) const SET_PROVIDER: &str = "--set flag";

/// Answers "where is `train.optimizer.lr`?" for diagnostics.
#[derive(Clone, Debug)]
pub struct Locator {
    /// The file's name as given.
    pub file: String,
    /// Positions of keys and values in the file.
    pub map: YamlMap,
    /// Overridden paths and their origin (env var or flag), most specific first when looked up.
    overrides: BTreeMap<String, Origin>,
}

impl Locator {
    pub(crate) fn new(src: &SourceText, map: YamlMap) -> Self {
        Self { file: src.name.clone(), map, overrides: BTreeMap::new() }
    }

    pub(crate) fn add_override(&mut self, path: String, origin: Origin) {
        self.overrides.insert(path, origin);
    }

    fn overridden(&self, path: &str) -> Option<Origin> {
        // The override of `path` itself or of one of its ancestors.
        let mut p = path;
        loop {
            if let Some(o) = self.overrides.get(p) {
                return Some(o.clone());
            }
            p = &p[..p.rfind('.')?];
        }
    }

    fn file_origin(&self, pos: Option<super::yaml_map::Pos>) -> Origin {
        let pos = pos.unwrap_or(super::yaml_map::Pos { line: 1, col: 1 });
        Origin::File { path: self.file.clone(), line: pos.line, col: pos.col }
    }

    /// Where the value at `path` came from.
    pub fn value(&self, path: &str) -> Origin {
        self.overridden(path).unwrap_or_else(|| self.file_origin(self.map.locate(path)))
    }

    /// Where the key at `path` is (for "unknown field" and "missing field" errors).
    pub fn key(&self, path: &str) -> Origin {
        self.overridden(path).unwrap_or_else(|| self.file_origin(self.map.locate_key(path)))
    }
}
