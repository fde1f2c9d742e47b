//! Helpers shared by the end-to-end tests: run the `npe` binary and capture its output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command for the `npe` binary built for these tests, run from the repository root.
pub fn npe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_npe"));
    c.current_dir(root());
    // Tests must not pick up a developer's NPE_ settings.
    for (k, _) in std::env::vars() {
        if k.starts_with("NPE_") {
            c.env_remove(k);
        }
    }
    c
}

/// Run and return (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("npe binary runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Path relative to the repository root, as a string.
pub fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}
