//! Fault injection: 20 training runs killed with SIGKILL at seeded random points — half of
//! them inside a checkpoint write (a test hook pauses between the temporary file and the
//! rename) — each resumed to the end. Every final model must be byte-identical to an
//! uninterrupted run's, and no temporary file may be left behind.

mod common;
use common::{SMALL_QUICKSTART, npe, run};
use npe_core::rng::Rng;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn train(out: &Path) -> Command {
    let mut c = npe();
    c.args(["train", "pipelines/quickstart.yaml", "--resume", "--progress", "quiet"])
        .args(SMALL_QUICKSTART)
        .arg("--out")
        .arg(out);
    c
}

fn temporaries(dir: &Path) -> Vec<String> {
    let mut v = vec![];
    for d in [dir.to_path_buf(), dir.join("checkpoints")] {
        if let Ok(rd) = std::fs::read_dir(d) {
            v.extend(
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(".tmp-")),
            );
        }
    }
    v
}

#[test]
fn twenty_killed_runs_resume_to_the_uninterrupted_model() {
    let reference = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&mut train(reference.path()));
    assert_eq!(code, 0, "{err}");
    let want = std::fs::read(reference.path().join("model.safetensors")).unwrap();
    let mut r = Rng::new(2026);
    let mut inside_write = 0;
    for i in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = train(dir.path());
        cmd.stderr(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        let in_write = i % 2 == 0;
        if in_write {
            cmd.env("NPETEST_PAUSE_IN_WRITE_MS", "300");
        }
        let mut child = cmd.spawn().unwrap();
        let t0 = Instant::now();
        if in_write {
            // Kill while the k-th checkpoint's temporary file exists (before its rename).
            let k = 1 + r.below(4) as usize;
            let mut seen = 0;
            let mut was_in = false;
            loop {
                let now_in = !temporaries(dir.path()).is_empty();
                if now_in && !was_in {
                    seen += 1;
                }
                was_in = now_in;
                if now_in && seen == k {
                    inside_write += 1;
                    break;
                }
                if child.try_wait().unwrap().is_some() || t0.elapsed() > Duration::from_secs(60) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        } else {
            std::thread::sleep(Duration::from_millis(200 + r.below(1500)));
        }
        let _ = child.kill();
        let _ = child.wait();
        let (code, _, err) = run(&mut train(dir.path()));
        assert_eq!(code, 0, "run {i}: resume failed: {err}");
        let got = std::fs::read(dir.path().join("model.safetensors")).unwrap();
        assert!(
            got == want,
            "run {i} (killed {}): the final model differs",
            if in_write { "inside a write" } else { "at random" }
        );
        assert!(temporaries(dir.path()).is_empty(), "run {i}: left {:?}", temporaries(dir.path()));
    }
    assert!(inside_write >= 8, "only {inside_write} kills landed inside a checkpoint write");
}
