//! npe's error model, a leaf every module may use (after candle's `Error` and polars'
//! `PolarsError::Context`).
//!
//! - [`IoError`]: a file operation that failed, with its path. Every domain error that reads or
//!   writes files holds this one type.
//! - [`TensorError`]: a failed tensor operation, naming the operation and keeping the tensor
//!   library's own error as its source.
//! - [`Error`]: the error of the core's helper APIs (node shape checks, study specs, the
//!   registry, conformance): a message, a broken invariant ([`Error::Internal`]), or another
//!   error wrapped with what was being done ([`Error::Context`], added by [`Context::context`]).
//!
//! Domain errors (`DataError`, `ExecError`, ...) stay enums a
//! caller can match; each keeps its source, so `std::error::Error::source` walks the chain.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A boxed error that can cross threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A file operation that failed: the path, and the operating system's error.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", .path.display())]
pub struct IoError {
    /// The file or folder.
    pub path: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    /// `source`, which happened on `path`.
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError { path: path.into(), source }
    }

    /// Whether the file did not exist.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == std::io::ErrorKind::NotFound
    }
}

/// `.at(path)` on an `io::Result`: the error becomes an [`IoError`] naming the path.
pub trait IoContext<T> {
    /// Name `path` in the error.
    fn at(self, path: impl AsRef<Path>) -> Result<T, IoError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, IoError> {
        self.map_err(|source| IoError::new(path.as_ref(), source))
    }
}

/// A failed tensor operation: which operation (`conv2d`, `matmul`, ...), the backend's message,
/// and the tensor library's own error where it has one.
#[derive(Debug, Clone)]
pub struct TensorError {
    /// The tensor operation (a method of `Ops`) that failed, once the backend or the core named it.
    pub op: Option<&'static str>,
    /// What went wrong, in the backend's words (`libtorch: ...`, `burn: ...`).
    pub message: String,
    /// The library's error value, if it has one.
    pub source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl TensorError {
    /// An error with a message and no operation yet.
    pub fn new(message: impl Into<String>) -> Self {
        TensorError { op: None, message: message.into(), source: None }
    }

    /// An error whose cause is the library's error `source`, shown after `prefix` (`libtorch`).
    pub fn from_source(prefix: &str, shown: impl fmt::Display, source: BoxError) -> Self {
        TensorError { op: None, message: format!("{prefix}: {shown}"), source: Some(Arc::from(source)) }
    }

    /// Name the operation, unless an inner call already did.
    pub fn in_op(mut self, op: &'static str) -> Self {
        self.op.get_or_insert(op);
        self
    }

    /// A panic of the tensor library inside `op`, as an error (burn reports shape errors so).
    pub fn from_panic(op: &'static str, library: &str, payload: &(dyn std::any::Any + Send)) -> Self {
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        TensorError { op: Some(op), message: format!("{library} panicked: {text}"), source: None }
    }
}

impl fmt::Display for TensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Some(op) => write!(f, "operation `{op}` failed: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for TensorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The error of the core's helper APIs, with the context it was raised in.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plain message, for the user (a shape check, a malformed flag).
    #[error("{0}")]
    Msg(String),
    /// A broken invariant of npe itself: a bug, not a user error.
    #[error("internal error (a bug in npe; please report it): {0}")]
    Internal(String),
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// Another error, with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        /// The node, file or step.
        context: String,
        /// The error.
        #[source]
        source: BoxError,
    },
    /// Another library's error.
    #[error(transparent)]
    Other(BoxError),
}

impl Error {
    /// A message error.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error::Msg(message.to_string())
    }

    /// Another library's error.
    pub fn other(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Other(Box::new(e))
    }

    /// This error, with what was being done.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error::Context { context: context.to_string(), source: Box::new(self) }
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::Msg(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::Msg(message.to_string())
    }
}

/// Result of the core's helper APIs.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `.context(...)` and `.with_context(|| ...)` on any `Result` and on `Option`.
pub trait Context<T> {
    /// Wrap the error (or the `None`) with what was being done.
    fn context(self, context: impl fmt::Display) -> Result<T>;
    /// [`context`](Context::context), built only on failure.
    fn with_context<D: fmt::Display>(self, context: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::Context { context: context.to_string(), source: Box::new(e) })
    }
    fn with_context<D: fmt::Display>(self, context: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error::Context { context: context().to_string(), source: Box::new(e) })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| Error::Msg(context.to_string()))
    }
    fn with_context<D: fmt::Display>(self, context: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| Error::Msg(context().to_string()))
    }
}

/// Return early with an [`Error::Msg`] built like `format!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::Msg(format!($($arg)*)).into())
    };
}

/// [`bail!`] unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::bail!($($arg)*);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_source_and_names_what_was_done() {
        let io: std::io::Result<()> = Err(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
        let e = io.at("runs/x/summary.json").context("reading the study").unwrap_err();
        assert_eq!(e.to_string(), "reading the study: runs/x/summary.json: gone");
        let inner = std::error::Error::source(&e).expect("the IoError");
        assert!(inner.downcast_ref::<IoError>().is_some_and(IoError::is_not_found));
    }

    #[test]
    fn a_tensor_error_names_its_operation_once() {
        let e = TensorError::new("libtorch: shapes differ").in_op("matmul").in_op("linear");
        assert_eq!(e.to_string(), "operation `matmul` failed: libtorch: shapes differ");
        let p = std::panic::catch_unwind(|| panic!("dimension mismatch {}", 3)).unwrap_err();
        let e = TensorError::from_panic("conv2d", "burn", p.as_ref());
        assert_eq!(e.to_string(), "operation `conv2d` failed: burn panicked: dimension mismatch 3");
    }

    #[test]
    fn option_context_and_bail() {
        fn f(x: Option<u8>) -> Result<u8> {
            let v = x.context("no value")?;
            ensure!(v < 10, "value {v} is not below 10");
            Ok(v)
        }
        assert_eq!(f(Some(3)).unwrap(), 3);
        assert_eq!(f(None).unwrap_err().to_string(), "no value");
        assert_eq!(f(Some(12)).unwrap_err().to_string(), "value 12 is not below 10");
        assert!(matches!(Error::Internal("x".into()), Error::Internal(_)));
    }
}
