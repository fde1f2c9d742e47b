//! Data errors: each names the file (and offset or index) and, for missing data, how to get it.

use std::path::PathBuf;

/// Everything that can go wrong reading data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder is not there.
    #[error("{what} not found at {path}\n  hint: {hint}")]
    Missing {
        /// What was looked for.
        what: String,
        /// Where.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
    /// `data.root` is needed but not set.
    #[error("`data.root` is not set and `{source_name}` has no standard install location\n  hint: {hint}")]
    NoRoot {
        /// Data source.
        source_name: String,
        /// Where to get the data / how to point at it.
        hint: String,
    },
    /// A file exists but its bytes are wrong.
    #[error("{file}: {message} (at byte offset {offset})")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// A label is outside `0..classes`.
    #[error("{file}: label {label} of sample {index} is out of range (the data has {classes} classes)")]
    LabelRange {
        /// The file.
        file: PathBuf,
        /// Sample index in that file.
        index: usize,
        /// The label found.
        label: i64,
        /// Number of classes.
        classes: usize,
    },
    /// The data's class count disagrees with the pipeline.
    #[error("{source_name} has {found} classes but the pipeline expects {expected}\n  hint: {hint}")]
    ClassCount {
        /// Data source.
        source_name: String,
        /// From the pipeline.
        expected: usize,
        /// In the data.
        found: usize,
        /// What to change.
        hint: String,
    },
    /// An image could not be decoded.
    #[error("{file}: cannot decode image: {message}")]
    Decode {
        /// The file.
        file: PathBuf,
        /// Decoder message.
        message: String,
    },
    /// A list-file line is malformed.
    #[error("{file}:{line}: {message}")]
    BadLine {
        /// The list file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Anything else about the request (bad option for this source, empty class...).
    #[error("{0}")]
    Invalid(String),
    /// I/O failure reading a file.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
}

impl DataError {
    /// I/O error on `path`; a missing file becomes [`DataError::Missing`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing { what: "file".into(), path, hint: "check `data.root`".into() }
        } else {
            DataError::Io(crate::error::IoError::new(path, source))
        }
    }

    /// Corrupt-file error.
    pub fn corrupt(file: impl Into<PathBuf>, offset: u64, message: impl Into<String>) -> Self {
        DataError::Corrupt { file: file.into(), offset, message: message.into() }
    }
}

/// Result alias for data.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
