//! Errors of the burn backend.

use npe_core::backend::ExecError;

/// What can go wrong in this backend.
#[derive(Debug, thiserror::Error)]
pub enum BurnError {
    /// A device this build cannot use.
    #[error(
        "this npe was built without burn feature `{feature}`, needed for device {device}\n  hint: rebuild with `--features {feature}`"
    )]
    NotCompiled {
        /// Cargo feature.
        feature: &'static str,
        /// Requested device.
        device: String,
    },
    /// A custom node kind has no burn implementation.
    #[error(
        "node `{node}`: kind `{kind}` has no burn implementation registered\n  hint: register it with `CustomKinds::register` in the program that runs this pipeline"
    )]
    MissingCustom {
        /// Node name.
        node: String,
        /// Kind.
        kind: String,
    },
    /// An internal inconsistency (a bug): reported rather than panicking.
    #[error("burn backend: {0}")]
    Internal(String),
}

impl From<BurnError> for ExecError {
    fn from(e: BurnError) -> Self {
        ExecError::Backend(e.to_string())
    }
}
