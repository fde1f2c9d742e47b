//! The fuzz harness (`examples/fuzz.rs`) keeps building and running: a short run over every
//! target must finish without a panicking input. (Long runs: `cargo run --release --example
//! fuzz -- --execs 1000000`.)

mod common;
use common::{root, run};
use std::process::Command;

#[test]
fn a_short_fuzz_run_over_every_target_finds_no_panic() {
    let path = harness();
    assert!(path.is_file(), "fuzz example not built at {}", path.display());
    let (code, out, err) = run(Command::new(path).current_dir(root()).args(["--execs", "3000", "--seed", "7"]));
    assert_eq!(code, 0, "{out}{err}");
    for target in ["spec", "cifar_binary", "cifar_python", "idx", "label_map", "checkpoint"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(target) && l.contains(" 3000 ") && l.split_whitespace().nth(2) == Some("0")),
            "{target}: {out}"
        );
    }
}

fn harness() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples").join(format!("fuzz{}", std::env::consts::EXE_SUFFIX))
}

/// The harness's own abort and hang detection, on planted faults: a stack overflow (SIGABRT,
/// which `catch_unwind` never sees) and an input that sleeps past the time limit are each
/// counted as a crash, saved, and the run goes on to the next input and fails at the end.
#[test]
fn the_harness_counts_an_abort_and_a_hang_as_crashes_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(Command::new(harness()).current_dir(dir.path()).args([
        "--target",
        "planted_overflow",
        "--execs",
        "3",
        "--seed",
        "2",
    ]));
    assert_ne!(code, 0, "{out}{err}");
    let row = out.lines().find(|l| l.starts_with("planted_overflow")).unwrap_or_else(|| panic!("{out}{err}"));
    assert_eq!(row.split_whitespace().nth(2), Some("3"), "3 inputs, 3 crashes: {row}");
    assert!(err.contains(".abort") && err.contains("signal"), "{err}");
    let saved = std::fs::read_dir(dir.path().join("fuzz/crashes")).unwrap().count();
    assert_eq!(saved, 3, "every aborting input saved, each run continued past the last one");

    let t0 = std::time::Instant::now();
    let (code, out, err) = run(Command::new(harness()).current_dir(dir.path()).args([
        "--target",
        "planted_hang",
        "--execs",
        "2",
        "--timeout-ms",
        "300",
    ]));
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains(".timeout"), "{err}");
    assert!(t0.elapsed().as_secs() < 30, "the time limit stopped each hanging input");

    let (code, out, _) = run(Command::new(harness()).arg("--help"));
    assert_eq!(code, 0);
    assert!(out.contains("usage: fuzz"), "--help prints usage and runs nothing: {out}");
}
