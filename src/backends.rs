//! Choosing a backend: compiled in by Cargo feature, picked at run time by `--backend`.

use npe_core::Registry;
use npe_core::error::Result;
use std::fmt;

/// A backend name as given to `--backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// burn 0.22 (CPU: flex; GPU: cuda, wgpu). Cargo feature `burn` (default).
    Burn,
    /// libtorch 2.13 through tch 0.26. Cargo feature `tch`.
    Tch,
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Burn => "burn",
            BackendChoice::Tch => "tch",
        })
    }
}

impl BackendChoice {
    /// Was this backend compiled in?
    pub fn compiled(self) -> bool {
        match self {
            BackendChoice::Burn => cfg!(feature = "burn"),
            BackendChoice::Tch => cfg!(feature = "tch"),
        }
    }

    /// The default: burn if compiled, else tch.
    pub fn default_compiled() -> Option<Self> {
        [BackendChoice::Burn, BackendChoice::Tch].into_iter().find(|b| b.compiled())
    }

    /// Error unless compiled in.
    pub fn ensure_compiled(self) -> Result<()> {
        if self.compiled() {
            Ok(())
        } else {
            Err(format!(
                "this npe was built without feature `{self}`: rebuild with `cargo build --release --features {self}`{}",
                if self == BackendChoice::Tch { " (libtorch: see scripts/libtorch.sh)" } else { "" }
            )
            .into())
        }
    }
}

/// Node kinds added by a user program: registered once with the core, run by every backend.
#[derive(Clone, Default)]
pub struct Extensions {
    /// Core registry (built-ins plus custom kinds).
    pub registry: Registry,
}
