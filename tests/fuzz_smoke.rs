//! The fuzz harness (`examples/fuzz.rs`) keeps building and running: a short run over every
//! target must finish without a panicking input. (Long runs: `cargo run --release --example
//! fuzz -- --execs 1000000`.)

mod common;
use common::{root, run};
use std::process::Command;

#[test]
fn a_short_fuzz_run_over_every_target_finds_no_panic() {
    let exe = std::env::current_exe().unwrap();
    let path =
        exe.parent().unwrap().parent().unwrap().join("examples").join(format!("fuzz{}", std::env::consts::EXE_SUFFIX));
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
