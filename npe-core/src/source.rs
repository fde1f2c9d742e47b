//! Reading pipeline files safely: size cap, binary and encoding checks, before any YAML parsing.

use crate::diag::{Diagnostic, Origin};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest pipeline file we read. Real pipelines are a few kilobytes; anything this large is a
/// mistake (a data file passed by accident), and refusing it early keeps `npe check` instant.
pub const MAX_PIPELINE_BYTES: u64 = 1 << 20;

/// A pipeline file's text and the name used in diagnostics.
#[derive(Clone, Debug)]
pub struct SourceText {
    /// Path as given by the user (used verbatim in `FILE:LINE:COL`).
    pub name: String,
    /// Where it was read from (None for in-memory text).
    pub path: Option<PathBuf>,
    /// The UTF-8 text.
    pub text: String,
}

impl SourceText {
    /// In-memory text (tests, programmatic pipelines).
    pub fn from_string(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self { name: name.into(), path: None, text: text.into() }
    }

    /// Read a pipeline file, refusing oversized, binary or non-UTF-8 input with a located error.
    pub fn read(path: &Path) -> Result<Self, Diagnostic> {
        let name = path.display().to_string();
        let at_start = || Origin::File { path: name.clone(), line: 1, col: 1 };
        let file = std::fs::File::open(path).map_err(|e| {
            Diagnostic::error(at_start(), format!("cannot open pipeline file: {e}"))
                .with_hint("check the path; pipelines that ship with npe live in `pipelines/`")
        })?;
        if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(Diagnostic::error(at_start(), "this is a directory, not a pipeline file")
                .with_hint("pass a .yaml file, e.g. pipelines/quickstart.yaml"));
        }
        let mut bytes = Vec::new();
        file.take(MAX_PIPELINE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Diagnostic::error(at_start(), format!("cannot read pipeline file: {e}")))?;
        if bytes.len() as u64 > MAX_PIPELINE_BYTES {
            return Err(Diagnostic::error(
                at_start(),
                format!("pipeline file is larger than {} KiB", MAX_PIPELINE_BYTES / 1024),
            )
            .with_hint("a pipeline is a short YAML file; is this a data file passed by mistake?"));
        }
        let text = Self::decode(&name, bytes)?;
        Ok(Self { name, path: Some(path.to_path_buf()), text })
    }

    /// Check bytes are text: no NUL or other control bytes, valid UTF-8.
    pub fn decode(name: &str, bytes: Vec<u8>) -> Result<String, Diagnostic> {
        let origin_at = |offset: usize| {
            let (line, col) = line_col(&bytes[..offset]);
            Origin::File { path: name.to_string(), line, col }
        };
        if let Some(pos) = bytes.iter().position(|&b| b == 0 || (b < 0x20 && b != b'\n' && b != b'\r' && b != b'\t')) {
            return Err(Diagnostic::error(
                origin_at(pos),
                format!("binary data (byte 0x{:02x} at offset {pos}): this is not a YAML text file", bytes[pos]),
            )
            .with_hint("pipelines are UTF-8 YAML text files"));
        }
        match String::from_utf8(bytes.clone()) {
            Ok(mut s) => {
                if s.starts_with('\u{feff}') {
                    s.remove(0);
                }
                Ok(s)
            }
            Err(e) => {
                let pos = e.utf8_error().valid_up_to();
                Err(Diagnostic::error(origin_at(pos), format!("invalid UTF-8 at offset {pos}"))
                    .with_hint("save the file as UTF-8"))
            }
        }
    }

    /// Origin for a 1-based position in this file.
    pub fn at(&self, line: usize, col: usize) -> Origin {
        Origin::File { path: self.name.clone(), line, col }
    }
}

/// 1-based (line, column) just after `prefix`.
fn line_col(prefix: &[u8]) -> (usize, usize) {
    let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = prefix.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_is_refused_with_position() {
        let err = SourceText::decode("x.yaml", b"a: 1\nb: \x00\x01".to_vec()).unwrap_err();
        assert_eq!(err.origin, Origin::File { path: "x.yaml".into(), line: 2, col: 4 });
        assert!(err.message.contains("binary"));
    }

    #[test]
    fn invalid_utf8_is_located() {
        let err = SourceText::decode("x.yaml", b"name: caf\xe9\n".to_vec()).unwrap_err();
        assert_eq!(err.origin, Origin::File { path: "x.yaml".into(), line: 1, col: 10 });
    }

    #[test]
    fn bom_is_stripped() {
        assert_eq!(SourceText::decode("x", "\u{feff}a: 1".as_bytes().to_vec()).unwrap(), "a: 1");
    }
}
