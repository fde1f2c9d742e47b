//! Data-parallel training over libtorch's c10d (Gloo on the CPU), through the `npe` binary as a
//! user runs it: `npe train --nproc-per-node 2` against one process on the same global batch,
//! with and without synchronised batch norm; a worker killed mid-run and one that hangs, both
//! named by the survivor; a resume with a different world size; ranks that run different
//! pipelines; and the burn backend's refusal.
#![cfg(feature = "tch")]

mod common;
use common::{npe, run};
use npe_core::checkpoint::Checkpoint;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The quickstart's MLP (no batch norm) on a smaller long-tailed set: 2 epochs × 25 steps of
/// global batch 128, SGD with momentum and weight decay.
const FIFTY_STEPS: &[&str] = &[
    "--set",
    "data.synthetic.per_class=1400",
    "--set",
    "train.epochs=2",
    "--set",
    "train.max_steps_per_epoch=25",
    "--set",
    "train.batch_size=128",
    "--set",
    "eval.prior_train_samples=500",
];

fn train(out: &Path, sets: &[&str], workers: usize) -> Command {
    let mut c = npe();
    c.args(["train", "pipelines/quickstart.yaml", "--backend", "tch", "--progress", "quiet"])
        .args(sets)
        .arg("--out")
        .arg(out);
    if workers > 1 {
        c.args(["--nproc-per-node", &workers.to_string()]);
    }
    c
}

/// Largest `max|a − b| / max|a|` over the model's tensors, and that tensor's name.
fn max_relative_difference(a: &Path, b: &Path) -> (f64, String) {
    let (a, b) = (Checkpoint::load(a).unwrap(), Checkpoint::load(b).unwrap());
    let mut worst = (0.0, String::new());
    for ta in &a.params {
        let tb = b.params.iter().find(|t| t.name == ta.name).unwrap_or_else(|| panic!("{} missing", ta.name));
        let scale = ta.data.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-12);
        let diff = ta.data.iter().zip(&tb.data).fold(0f64, |m, (x, y)| m.max((x - y).abs() as f64));
        if diff / scale > worst.0 {
            worst = (diff / scale, ta.name.clone());
        }
    }
    worst
}

fn trained(sets: &[&str], workers: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(&mut train(dir.path(), sets, workers));
    assert_eq!(code, 0, "{workers} worker(s) failed:\n{out}\n{err}");
    dir
}

#[test]
fn two_workers_of_batch_64_take_the_steps_of_one_of_batch_128() {
    let one = trained(FIFTY_STEPS, 1);
    let two = trained(FIFTY_STEPS, 2);
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(two.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["steps"], 50, "{s}");
    let (worst, name) =
        max_relative_difference(&one.path().join("model.safetensors"), &two.path().join("model.safetensors"));
    assert!(worst <= 1e-5, "after 50 steps `{name}` differs by {worst:.2e} (relative)");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(two.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(run["world_size"], 2);
}

#[test]
fn a_sharded_evaluation_gives_one_processs_numbers_bit_for_bit() {
    // 2000 test images in 7 batches of 300 (the ranks take 4 and 3, the last one short), 500
    // training images for the prior and the calibration in 2; one thread everywhere, so each
    // batch's outputs are the same in any process.
    let sets: Vec<&str> = FIFTY_STEPS
        .iter()
        .copied()
        .chain(["--set", "eval.batch_size=300", "--set", "train.threads=1"])
        // Calibrated on the training images (their class sums), and fitted there too.
        .chain(["--set", "nodes.npe.scale=auto", "--set", "nodes.prior_fit.logits=logits"])
        .collect();
    let two = trained(&sets, 2);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(two.path().join("summary.json")).unwrap()).unwrap();
    let model = two.path().join("model.safetensors");
    let (code, out, err) = run(npe()
        .args(["eval", "pipelines/quickstart.yaml", "--backend", "tch", "--json", "--checkpoint"])
        .arg(&model)
        .args(&sets));
    assert_eq!(code, 0, "{err}");
    let one: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (sharded, single) = (&summary["eval"], &one); // `npe eval --json` flattens its report
    for part in ["accuracy", "prior", "calibration"] {
        assert!(single[part].as_object().is_some_and(|m| !m.is_empty()), "no {part} in {single}");
        assert_eq!(sharded[part], single[part], "{part}: 2 ranks against one process");
    }
    assert_eq!(sharded["test_images"], 2000);
    assert_eq!(single["test_images"], 2000);
}

#[test]
fn synchronised_batch_norm_matches_one_process_and_per_rank_batch_norm_does_not() {
    let bn: Vec<&str> = FIFTY_STEPS.iter().copied().chain(["--set", "nodes.features.batch_norm=true"]).collect();
    let synced: Vec<&str> = bn.iter().copied().chain(["--set", "train.sync_batch_norm=true"]).collect();
    let one = trained(&bn, 1);
    let one_synced = trained(&synced, 1);
    let two_synced = trained(&synced, 2);
    let two_per_rank = trained(&bn, 2);
    let model = |d: &tempfile::TempDir| d.path().join("model.safetensors");
    // One process: the setting changes nothing.
    let (same, _) = max_relative_difference(&model(&one), &model(&one_synced));
    assert!(same <= 1e-6, "sync_batch_norm on one process changed the model by {same:.2e}");
    let (synced_diff, name) = max_relative_difference(&model(&one), &model(&two_synced));
    // Measured 3.9e-7; the cross-backend tolerance is 1e-3.
    assert!(synced_diff <= 1e-5, "synchronised batch norm: `{name}` differs by {synced_diff:.2e}");
    let (per_rank_diff, _) = max_relative_difference(&model(&one), &model(&two_per_rank));
    assert!(
        per_rank_diff > 1e-3,
        "per-rank statistics ({per_rank_diff:.2e}) should differ from the global batch's far more than synchronised ones ({synced_diff:.2e})"
    );
}

/// seg_digits_lt.yaml shrunk (as tests/segmentation_e2e.rs): 32×32 canvases, a two-level U-Net
/// with batch norm (synchronised), random crops whose padding is unlabelled, so the ranks' halves
/// of a batch hold different numbers of labelled pixels. 20 steps of global batch 16.
const SEGMENTATION: &[&str] = &[
    "--set",
    "data.seg_digits.canvas=32",
    "--set",
    "data.seg_digits.train_images=600",
    "--set",
    "data.seg_digits.test_images=100",
    "--set",
    "data.seg_digits.items=[1, 3]",
    "--set",
    "data.augment.random_crop={size: 32, padding: 6}",
    "--set",
    "nodes.features.channels=[8, 16]",
    "--set",
    "train.epochs=2",
    "--set",
    "train.max_steps_per_epoch=10",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.sync_batch_norm=true",
    "--set",
    "eval.prior_train_samples=100",
    // The plain layout: libtorch's channels-last kernels sum in an order that depends on the
    // thread count, and the first batch norm's nearly cancelling bias gradient magnifies that to
    // ~1e-3 in a few steps (one process on 2 threads against 2 workers on 1 each), far above the
    // 1e-5 this test needs to see the per-pixel weighting. See `nodes/unet.rs`.
    "--set",
    "train.channels_last=false",
];

#[test]
fn segmentation_workers_weigh_their_labelled_pixels() {
    let run_seg = |workers: usize| {
        let dir = tempfile::tempdir().unwrap();
        let mut c = npe();
        c.args(["train", "pipelines/seg_digits_lt.yaml", "--backend", "tch", "--progress", "quiet"])
            .args(SEGMENTATION)
            .arg("--out")
            .arg(dir.path());
        if workers > 1 {
            c.args(["--nproc-per-node", &workers.to_string()]);
        }
        let (code, out, err) = run(&mut c);
        assert_eq!(code, 0, "{workers} worker(s):\n{out}\n{err}");
        dir
    };
    let (one, two) = (run_seg(1), run_seg(2));
    let (worst, name) =
        max_relative_difference(&one.path().join("model.safetensors"), &two.path().join("model.safetensors"));
    // Measured 3.8e-7. The first version (gradients weighted by image share after backward,
    // variance as E[x²] − E[x]²) differed by 4.0e-2.
    assert!(worst <= 1e-5, "after 20 steps `{name}` differs by {worst:.2e} (relative)");
}

/// Start a 2-worker run and return it with the workers' pids (from the launcher's stderr) and
/// the rest of its stderr, collected on a thread.
fn launch(out: &Path, sets: &[&str]) -> (std::process::Child, Vec<u32>, std::sync::mpsc::Receiver<String>) {
    let mut child = train(out, sets, 2).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut pids = vec![];
    let mut head = String::new();
    while pids.len() < 2 {
        let line = lines.next().unwrap_or_else(|| panic!("the launcher ended early:\n{head}")).unwrap();
        if let Some(pid) =
            line.strip_prefix("rank ").and_then(|l| l.split_once(": pid ")).map(|(_, p)| p.parse().unwrap())
        {
            pids.push(pid);
        }
        head += &line;
        head.push('\n');
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let _ = tx.send(format!("{head}{}", rest.join("\n")));
    });
    (child, pids, rx)
}

fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap().success();
    assert!(ok, "kill -{name} {pid}");
}

fn wait_for_checkpoint(out: &Path, child: &mut std::process::Child) {
    let start = Instant::now();
    while std::fs::read_dir(out.join("checkpoints")).map_or(0, |d| d.count()) == 0 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint after 120 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const LONG_RUN: &[&str] = &[
    "--set",
    "data.synthetic.per_class=600",
    "--set",
    "train.epochs=40",
    "--set",
    "train.batch_size=64",
    "--set",
    "eval.every_epochs=40",
    "--set",
    "eval.prior_train_samples=200",
    "--set",
    "train.dist_timeout_s=10",
];

/// `--resume` a [`LONG_RUN`] in `out` with `workers` workers; it must finish all 40 epochs.
fn resume_to_the_end(out: &Path, workers: usize) {
    let mut resume = train(out, LONG_RUN, workers);
    resume.arg("--resume");
    let (code, stdout, err) = run(&mut resume);
    assert_eq!(code, 0, "{stdout}\n{err}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["epochs"], 40);
}

#[test]
fn a_killed_worker_is_named_and_the_run_resumes_on_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, pids, stderr) = launch(dir.path(), LONG_RUN);
    wait_for_checkpoint(dir.path(), &mut child);
    let killed = Instant::now();
    signal(pids[1], "KILL");
    let status = child.wait().unwrap();
    let waited = killed.elapsed();
    let err = stderr.recv().unwrap();
    assert!(!status.success(), "{err}");
    assert!(waited < Duration::from_secs(10 + 10), "took {waited:?} to stop:\n{err}");
    assert!(err.contains("error: rank 1 (pid") && err.contains("was killed (SIGKILL)"), "launcher:\n{err}");
    assert!(err.contains("rank 0 of 2:") && err.contains("rank 1 stopped answering"), "rank 0's report:\n{err}");
    // Resume from rank 0's last checkpoint with one worker.
    resume_to_the_end(dir.path(), 1);
}

#[test]
fn ctrl_c_on_one_rank_stops_every_rank_at_the_same_step_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, pids, stderr) = launch(dir.path(), LONG_RUN);
    wait_for_checkpoint(dir.path(), &mut child);
    // Only rank 1 is asked to stop: the ranks agree on a step, rank 0 writes the checkpoint.
    signal(pids[1], "INT");
    let status = child.wait().unwrap();
    let err = stderr.recv().unwrap();
    assert_eq!(status.code(), Some(3), "interrupted, resumable:\n{err}");
    assert!(err.contains("interrupted at epoch"), "{err}");
    resume_to_the_end(dir.path(), 2);
}

#[test]
fn a_hung_worker_is_named_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let sets: Vec<&str> = LONG_RUN.iter().copied().chain(["--set", "train.dist_timeout_s=3"]).collect();
    let (mut child, pids, stderr) = launch(dir.path(), &sets);
    wait_for_checkpoint(dir.path(), &mut child);
    let stopped = Instant::now();
    signal(pids[1], "STOP");
    let status = child.wait().unwrap();
    let err = stderr.recv().unwrap();
    let waited = stopped.elapsed();
    assert!(!status.success(), "{err}");
    assert!(err.contains("rank 0 of 2:") && err.contains("rank 1 stopped answering"), "rank 0's report:\n{err}");
    // Rank 0 stops after the 3 s timeout and its 3 s report window (timeout + 5 s at most); the
    // launcher then kills the stopped rank at once.
    assert!(waited < Duration::from_secs(3 + 5 + 3), "took {waited:?}:\n{err}");
    assert!(
        err.contains("rank 1 (pid") && err.contains("is stopped") && err.contains("killing it"),
        "launcher:\n{err}"
    );
    assert!(!err.contains("frame #") && !err.contains("Exception raised"), "C++ stack frames:\n{err}");
}

/// A [`LONG_RUN`] whose rank 0 evaluates every epoch on `test_per_class` × 10 test samples,
/// under `timeout`: the other rank spends much of its time waiting for rank 0 at a barrier.
fn evaluating_run(timeout: &'static str, test_per_class: &'static str) -> Vec<&'static str> {
    let mut sets: Vec<&str> = LONG_RUN.to_vec();
    sets.extend(["--set", "eval.every_epochs=1", "--set", test_per_class, "--set", timeout]);
    sets
}

/// Wait for `child` up to `limit`, killing it (and failing) past that.
fn wait_at_most(child: &mut std::process::Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stopped_rank_0_is_named_by_the_others_within_the_timeout() {
    // Rank 0 serves the store: once stopped, neither its collectives nor the store answer, and
    // the waiting rank must not wait for its evaluation's 4 h bound.
    let dir = tempfile::tempdir().unwrap();
    let sets = evaluating_run("train.dist_timeout_s=3", "data.synthetic.test_per_class=30000");
    let (mut child, pids, stderr) = launch(dir.path(), &sets);
    wait_for_checkpoint(dir.path(), &mut child);
    std::thread::sleep(Duration::from_millis(700));
    let stopped = Instant::now();
    signal(pids[0], "STOP");
    let status = wait_at_most(&mut child, Duration::from_secs(60), "a run whose rank 0 is stopped");
    let waited = stopped.elapsed();
    let err = stderr.recv().unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("rank 1 of 2:") && err.contains("rank 0 stopped answering"), "rank 1's report:\n{err}");
    assert!(waited < Duration::from_secs(3 + 5 + 3), "took {waited:?}:\n{err}");
    assert!(
        err.contains("rank 0 (pid") && err.contains("is stopped") && err.contains("killing it"),
        "launcher:\n{err}"
    );
    assert!(!err.contains("frame #"), "C++ stack frames:\n{err}");
}

#[test]
fn a_rank_0_evaluating_longer_than_the_timeout_is_waited_for() {
    // Each evaluation takes longer than the 2 s timeout; rank 0's heartbeat tells rank 1 it is
    // alive, so the run finishes. Evaluation is made slow by batches of one image, not by a big
    // test set: generating one delays rank 0's join, which CI's load once pushed past a 1 s
    // timeout.
    let dir = tempfile::tempdir().unwrap();
    let sets = [
        "--set",
        "data.synthetic.per_class=300",
        "--set",
        "train.epochs=2",
        "--set",
        "eval.every_epochs=1",
        "--set",
        "data.synthetic.test_per_class=8000",
        "--set",
        "eval.batch_size=1",
        "--set",
        "train.dist_timeout_s=2",
    ];
    let (code, out, err) = run(&mut train(dir.path(), &sets, 2));
    assert_eq!(code, 0, "{out}\n{err}");
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    let eval_s = s["phases"]["eval_test"].as_f64().unwrap_or_else(|| panic!("no phases.eval_test: {s}"));
    assert!(eval_s / 2.0 > 2.0, "each of the 2 evaluations must outlast the 2 s timeout to test anything: {eval_s} s");
}

#[test]
fn a_lone_node_of_two_is_a_clear_error_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let mut c = train(dir.path(), &["--set", "train.dist_timeout_s=3"], 1);
    c.args(["--nnodes", "2", "--node-rank", "0", "--master-port", &port]);
    let start = Instant::now();
    let (code, _, err) = run(&mut c);
    assert_eq!(code, 1, "{err}");
    assert!(start.elapsed() < Duration::from_secs(3 + 5), "took {:?}:\n{err}", start.elapsed());
    assert!(err.contains("could not join the run") && err.contains("not every rank reached"), "{err}");
    assert!(!err.contains("frame #") && err.lines().count() < 8, "a short message:\n{err}");
}

/// Killing the launcher (SIGKILL: no handler runs) left its workers training to the end,
/// holding the run's lock; they now die with it, and the run resumes.
#[test]
fn workers_die_with_a_killed_launcher_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, pids, _stderr) = launch(dir.path(), LONG_RUN);
    wait_for_checkpoint(dir.path(), &mut child);
    let killed = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
    };
    while pids.iter().any(|&p| alive(p)) {
        assert!(killed.elapsed() < Duration::from_secs(20), "workers {pids:?} outlived their launcher");
        std::thread::sleep(Duration::from_millis(50));
    }
    resume_to_the_end(dir.path(), 2);
}

/// One worker started by hand with torchrun's variables.
fn worker(out: &Path, rank: usize, port: u16, sets: &[&str]) -> Command {
    let mut c = train(out, sets, 1);
    c.env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string());
    c
}

#[test]
fn ranks_running_different_pipelines_stop_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let lr = ["--set", "train.optimizer.lr=0.01"];
    let a = worker(dir.path(), 0, port, FIFTY_STEPS).stderr(Stdio::piped()).spawn().unwrap();
    let other: Vec<&str> = FIFTY_STEPS.iter().copied().chain(lr).collect();
    let b = worker(dir.path(), 1, port, &other).stderr(Stdio::piped()).spawn().unwrap();
    for (rank, c) in [(0, a), (1, b)] {
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "rank {rank} went on:\n{err}");
        assert!(err.contains("different pipeline"), "rank {rank}:\n{err}");
    }
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let (code, _, err) = run(&mut worker(dir.path(), 0, port, FIFTY_STEPS));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("could not join the run") && err.contains("--master-port"), "{err}");
}

#[test]
fn an_unreachable_master_is_a_clear_error_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port, and rank 0 never starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sets: Vec<&str> = FIFTY_STEPS.iter().copied().chain(["--set", "train.dist_timeout_s=2"]).collect();
    let start = Instant::now();
    let (code, _, err) = run(&mut worker(dir.path(), 1, port, &sets));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("rank 1 of 2 could not join the run at 127.0.0.1:"), "{err}");
    assert!(err.contains("not every rank reached"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());
}

#[test]
fn kinds_lists_the_collective_engines() {
    let (code, out, err) = run(npe().arg("kinds"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("data-parallel: libtorch c10d: Gloo (cpu)"), "{out}");
    if cfg!(feature = "burn") {
        assert!(out.contains("data-parallel: none (--nproc-per-node needs --backend tch)"), "{out}");
    }
}

#[cfg(feature = "burn")]
#[test]
fn burn_answers_use_tch() {
    let (code, _, err) =
        run(npe().args(["train", "pipelines/quickstart.yaml", "--backend", "burn", "--nproc-per-node", "2"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--backend tch"), "{err}");
}
