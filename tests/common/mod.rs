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

/// `--set` flags that make `pipelines/quickstart.yaml` small: 6 epochs of 12 steps of 64 (the
/// fault-injection and reliability runs).
pub const SMALL_QUICKSTART: &[&str] = &[
    "--set",
    "data.synthetic.per_class=300",
    "--set",
    "train.epochs=6",
    "--set",
    "train.batch_size=64",
    "--set",
    "data.loader.workers=1",
];

/// Run and return (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("npe binary runs");
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

use npe_core::backend::Backend;
use npe_core::ir::Ir;
use npe_core::model::NamedTensor;
use npe_core::spec::{Overrides, load_file, load_source};
use npe_core::{Registry, source::SourceText};

/// The backends compiled into this test build (each end-to-end test runs on all of them).
pub fn backends() -> Vec<Box<dyn Backend>> {
    let mut v: Vec<Box<dyn Backend>> = vec![];
    #[cfg(feature = "burn")]
    v.push(Box::new(npe_backend_burn::BurnBackend::default()));
    #[cfg(feature = "tch")]
    v.push(Box::new(npe_backend_tch::TchBackend::default()));
    assert!(!v.is_empty(), "no backend compiled in");
    v
}

/// IR of a pipeline file with `--set` overrides (no environment).
pub fn ir_of_file(path: &str, sets: &[&str]) -> Ir {
    let o = Overrides { sets: sets.iter().map(|s| s.to_string()).collect(), env: false };
    let loaded = load_file(&root().join(path), &o).unwrap_or_else(|d| panic!("{d}"));
    npe_core::ir::build(&loaded, &Registry::builtin()).unwrap_or_else(|d| panic!("{d}")).0
}

/// IR of pipeline text with `--set` overrides.
pub fn ir_of(yaml: &str, sets: &[&str]) -> Ir {
    let o = Overrides { sets: sets.iter().map(|s| s.to_string()).collect(), env: false };
    let loaded = load_source(SourceText::from_string("test.yaml", yaml), &o).unwrap_or_else(|d| panic!("{d}"));
    npe_core::ir::build(&loaded, &Registry::builtin()).unwrap_or_else(|d| panic!("{d}")).0
}

/// quickstart.yaml with its `features:` node replaced by `features` (a YAML flow mapping).
pub fn quickstart_with_features(features: &str) -> String {
    let text = std::fs::read_to_string(root().join("pipelines/quickstart.yaml")).unwrap();
    let line = text.lines().find(|l| l.trim_start().starts_with("features:")).expect("a features node").to_string();
    text.replace(&line, &format!("  features: {features}"))
}

/// Read the tensors of a safetensors file written by npe.
pub fn tensors(path: &Path) -> Vec<NamedTensor> {
    npe_core::checkpoint::Checkpoint::load(path).unwrap_or_else(|e| panic!("{e}")).params
}

/// Largest relative difference between two sets of named tensors (same names required).
pub fn max_rel_diff(a: &[NamedTensor], b: &[NamedTensor]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f64;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.name, y.name);
        let scale = x.data.iter().fold(1e-6f64, |m, v| m.max(v.abs() as f64));
        for (p, q) in x.data.iter().zip(&y.data) {
            worst = worst.max((p - q).abs() as f64 / scale);
        }
    }
    worst
}

/// Options of a quiet, fresh (not resumed) training run into `out`.
pub fn quiet_run(out: &Path) -> npe_core::train::TrainOptions {
    npe_core::train::TrainOptions {
        out: out.to_path_buf(),
        resume: false,
        progress: npe_core::train::ProgressMode::Quiet,
        stop: None,
        stop_after_steps: None,
        fallback: false,
    }
}
