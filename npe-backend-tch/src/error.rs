//! Errors of the tch backend.

use npe_core::backend::ExecError;

/// What can go wrong in this backend.
#[derive(Debug, thiserror::Error)]
pub enum TchBackendError {
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A custom node kind has no tch implementation.
    #[error(
        "node `{node}`: kind `{kind}` has no tch implementation registered\n  hint: register it with `CustomKinds::register` in the program that runs this pipeline"
    )]
    MissingCustom {
        /// Node name.
        node: String,
        /// Kind.
        kind: String,
    },
    /// An internal inconsistency (a bug), reported rather than panicking.
    #[error("tch backend: {0}")]
    Internal(String),
}

impl From<TchBackendError> for ExecError {
    fn from(e: TchBackendError) -> Self {
        ExecError::Backend(e.to_string())
    }
}

/// Result alias.
pub type Result<T, E = TchBackendError> = std::result::Result<T, E>;
