//! `npe study`: a small grid on the built-in data — two runs (CE made from the NPE pipeline by
//! removing and replacing nodes with `--set ~key` / `key:=value`) × two seeds, two at a time —
//! then the table; a second call reuses every finished run.

mod common;
use common::{npe, run};

#[test]
fn a_study_trains_its_grid_tabulates_mean_and_std_and_reuses_finished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(
        &file,
        r#"name: tiny
seeds: [0, 1]
set: [train.epochs=2, eval.every_epochs=1, data.synthetic.per_class=300, data.loader.workers=1]
runs:
  ce:
    pipeline: pipelines/quickstart.yaml
    set: ["~nodes.prior", "~nodes.pem_loss", "~nodes.npe", "~nodes.prior_fit", "nodes.accuracy.inputs:=[logits, posthoc]"]
  npe:
    pipeline: pipelines/quickstart.yaml
"#,
    )
    .unwrap();
    let root = dir.path().join("out");
    let args = |extra: &[&str]| {
        let mut c = npe();
        c.arg("study").arg(&file).arg("--root").arg(&root).args(extra);
        c
    };
    let (code, out, err) = run(&mut args(&["--dry-run"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("4 runs") && out.matches("pending").count() == 4 && out.contains("about"), "{out}");
    let (code, out, err) = run(&mut args(&["--jobs", "2"]));
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(root.join("tiny/results.md")).unwrap();
    assert_eq!(
        out.trim_end().lines().last().unwrap(),
        format!("wrote {}/tiny/results.{{md,csv,json}} and report.html", root.display())
    );
    for row in ["| ce | logits | 2 |", "| ce | posthoc | 2 |", "| npe | npe | 2 |", "| npe | logits | 2 |"] {
        let row = format!("{row} mean per-class accuracy |");
        assert!(md.contains(&row), "{row} missing:\n{md}");
    }
    assert!(!md.contains("| ce | npe |"), "the CE run must have no PEM:\n{md}");
    assert!(md.contains(" ± "), "seed std missing:\n{md}");
    assert_eq!(std::fs::read_to_string(root.join("tiny/results.csv")).unwrap().lines().count(), 1 + 5);
    let html = std::fs::read_to_string(root.join("tiny/report.html")).unwrap();
    assert!(html.contains("<h2>Across runs</h2><div class=\"plots\"><div><svg"), "across-run charts");
    // The prior over training: NPE's runs evaluated their prior at epochs 1 and 2; CE has none.
    assert!(md.contains("### Prior over training"), "{md}");
    assert!(md.contains("**npe seed 0** (finished; epoch 2 so far)") && md.contains("**npe seed 1**"), "{md}");
    assert!(!md.contains("**ce seed"), "CE has no prior to follow:\n{md}");
    let trajectory = &md[md.find("**npe seed 0**").unwrap()..];
    assert!(
        trajectory.lines().any(|l| l.starts_with("| 1 | ")) && trajectory.lines().any(|l| l.starts_with("| 2 | ")),
        "{md}"
    );
    for chart in
        ["chart_mean.svg", "chart_mean.png", "chart_tail.png", "chart_prior_slope.png", "npe-s0/prior_slope.svg"]
    {
        assert!(root.join("tiny").join(chart).is_file(), "{chart}");
    }
    for bar in ["<title>ce posthoc: ", "<title>npe npe: ", "<title>npe logits: "] {
        assert!(html.contains(bar), "a bar per run and output: {bar}");
    }
    // Everything is reused the second time.
    let (code, _, err) = run(&mut args(&[]));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("[1/"), "a finished run was trained again: {err}");
    assert_eq!(std::fs::read_to_string(root.join("tiny/results.md")).unwrap(), md);
    // --report-only writes the same tables and trains nothing.
    std::fs::remove_file(root.join("tiny/results.md")).unwrap();
    let (code, _, err) = run(&mut args(&["--report-only"]));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("[1/"), "--report-only trained: {err}");
    assert_eq!(std::fs::read_to_string(root.join("tiny/results.md")).unwrap(), md);

    // An adjuster added afterwards: --reevaluate puts it into the table without training.
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "  npe:\n    pipeline: pipelines/quickstart.yaml\n",
        "  npe:\n    pipeline: pipelines/quickstart.yaml\n    set: [\"nodes.pred:={kind: posthoc_la, input: logits, prior: predicted}\", \"nodes.accuracy.inputs:=[logits, npe, pred]\"]\n",
    );
    std::fs::write(&file, text).unwrap();
    let (code, _, err) = run(&mut args(&["--only", "npe", "--reevaluate"]));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("[1/"), "re-evaluation must not train: {err}");
    assert_eq!(err.matches("re-evaluated npe seed").count(), 2, "{err}");
    let md = std::fs::read_to_string(root.join("tiny/results.md")).unwrap();
    assert!(md.contains("| npe | pred | 2 | mean per-class accuracy |"), "{md}");
    assert!(md.contains("| ce | posthoc | 2 |"), "runs not selected stay in the table:\n{md}");
    assert!(root.join("tiny/npe-s0/summary.before-reevaluate.json").is_file());
    let (code, _, err) = run(&mut args(&["--only", "nope"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no run `nope`") && err.contains("ce, npe"), "{err}");
}

/// A segmentation study tabulates mIoU and the tail classes' mIoU.
#[test]
fn a_segmentation_study_tabulates_miou() {
    if !std::path::Path::new("/usr/share/datasets/fashion-mnist").is_dir() {
        panic!("Fashion-MNIST is missing: `apt-get install dataset-fashion-mnist` (scripts/test.sh installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seg.yaml");
    std::fs::write(
        &file,
        r#"name: seg
seeds: [0]
set: [train.epochs=1, data.seg_digits.train_images=64, data.seg_digits.test_images=16, eval.prior_train_samples=32, data.loader.workers=1]
runs:
  npe:
    pipeline: pipelines/seg_digits_lt.yaml
"#,
    )
    .unwrap();
    let root = dir.path().join("out");
    let (code, _, err) = run(npe().arg("study").arg(&file).arg("--root").arg(&root));
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(root.join("seg/results.md")).unwrap();
    for output in ["logits", "npe", "posthoc"] {
        assert!(md.contains(&format!("| npe | {output} | 1 | mIoU |")), "{output}:\n{md}");
    }
}

/// Every shipped study plans runs that are valid pipelines (no data needed to check them).
#[test]
fn every_shipped_study_is_a_grid_of_valid_pipelines() {
    use npe_core::report::study::StudySpec;
    use npe_core::spec::{Overrides, load_file};
    let mut n = 0;
    for e in std::fs::read_dir(common::root().join("studies")).unwrap() {
        let path = e.unwrap().path();
        let spec = StudySpec::load(&path).unwrap_or_else(|e| panic!("{e}"));
        for run in spec.plan(std::path::Path::new("out")) {
            let o = Overrides { sets: run.sets.clone(), env: false };
            let loaded =
                load_file(&common::root().join(&run.pipeline), &o).unwrap_or_else(|d| panic!("{}: {d}", run.row));
            npe_core::ir::build(&loaded, &npe_core::Registry::builtin())
                .unwrap_or_else(|d| panic!("{} {:?}: {d}", run.row, run.sets));
            n += 1;
        }
    }
    assert_eq!(
        n,
        15 + 45 + 45 + 8 + 6 + 4 + 9 + 9 + 9 + 6 + 2,
        "fashion 5 runs × 3 seeds; CIFAR-10/100 5 runs × 3 imbalance factors × 3 seeds; CIFAR-10 JPEG 20 epochs 4 × 2, 200 epochs 3 × 2, precision 1 × 2 precisions × 2; seg-digits 3 × 3, STARE 3 × 3 at 1× and at 2× the budget, DRIVE 2 × 3, ADE20K 2 × 1"
    );
}

/// A one-run study on the built-in data, quick (1 epoch), in `dir`.
fn tiny_study(dir: &std::path::Path, epochs: u32) -> std::path::PathBuf {
    let file = dir.join("t.yaml");
    std::fs::write(
        &file,
        format!(
            "name: t\nseeds: [0]\nset: [train.epochs={epochs}, data.synthetic.per_class=200, data.loader.workers=1]\nruns:\n  npe:\n    pipeline: pipelines/quickstart.yaml\n"
        ),
    )
    .unwrap();
    file
}

/// The reliability probe's first finding: after an edit of the study's `set`, the rerun
/// exited 0 with the old table. Now a changed run is stale, named with what changed, and
/// retrained only with --rerun-stale (its old folder kept).
#[test]
fn a_run_whose_settings_changed_is_stale_never_silently_reused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let study =
        |file: &std::path::Path, extra: &[&str]| run(npe().arg("study").arg(file).arg("--root").arg(&root).args(extra));
    let file = tiny_study(dir.path(), 1);
    let (code, _, err) = study(&file, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(root.join("t/npe-s0/fingerprint.json").is_file());
    let (code, _, err) = study(&file, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("[1/"), "an unchanged run is reused: {err}");

    let file = tiny_study(dir.path(), 2);
    let (code, _, err) = study(&file, &[]);
    assert_eq!(code, 2, "a stale run stops the study: {err}");
    assert!(err.contains("stale") && err.contains("train.epochs: 1 → 2") && err.contains("--rerun-stale"), "{err}");
    let (code, _, err) = study(&file, &["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = study(&file, &["--rerun-stale"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("[1/1] npe seed 0: done"), "{err}");
    assert!(root.join("t/npe-s0.stale-1/summary.json").is_file(), "the stale folder is kept");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("t/npe-s0/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["epochs"], 2);
}

/// A one-run study trained once: its temporary folder, study file and root.
fn one_finished_run() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let file = tiny_study(dir.path(), 1);
    let (code, _, err) = run(npe().arg("study").arg(&file).arg("--root").arg(&root));
    assert_eq!(code, 0, "{err}");
    (dir, file, root)
}

/// A truncated summary.json silently dropped its run from the table and was never retrained.
#[test]
fn a_truncated_summary_is_reported_and_the_run_finished_again() {
    let (_dir, file, root) = one_finished_run();
    let study = || run(npe().arg("study").arg(&file).arg("--root").arg(&root));
    let path = root.join("t/npe-s0/summary.json");
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    let (code, _, err) = study();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("summary.json is unreadable") && err.contains("summary.json.broken"), "{err}");
    assert!(err.contains("[1/1] npe seed 0 (resumed): done"), "{err}");
    let md = std::fs::read_to_string(root.join("t/results.md")).unwrap();
    assert!(md.contains("| npe | npe | 1 |"), "the run is back in the table:\n{md}");
    assert!(root.join("t/npe-s0/summary.json.broken").is_file());
}

/// A hand-edited summary.json that still parses was used as is; it no longer matches the
/// checksum written with it, so the study says so and finishes the run again.
#[test]
fn a_hand_edited_summary_is_reported_and_the_run_finished_again() {
    let (_dir, file, root) = one_finished_run();
    let study = || run(npe().arg("study").arg(&file).arg("--root").arg(&root));
    let path = root.join("t/npe-s0/summary.json");
    assert!(root.join("t/npe-s0/summary.json.crc32").is_file(), "the checksum is written with the summary");
    let trained: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut edited = trained.clone();
    edited["epochs"] = serde_json::json!(99);
    std::fs::write(&path, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
    let (code, _, err) = study();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("edited after training") && err.contains("summary.json.broken"), "{err}");
    assert!(err.contains("[1/1] npe seed 0 (resumed): done"), "{err}");
    let again: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(again["epochs"], trained["epochs"], "the summary is the run's again");
    // Unchanged now: reused without a word.
    let (code, _, err) = study();
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("edited") && !err.contains("[1/"), "{err}");
}

/// Two `npe study` on one study: the second is refused at once, the first is untouched; and
/// killing `npe study` kills its `npe train` child (no orphan holding the run's lock).
#[test]
fn a_second_study_is_refused_and_killing_a_study_kills_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let file = tiny_study(dir.path(), 100_000);
    let mut first =
        npe().arg("study").arg(&file).arg("--root").arg(&root).stderr(std::process::Stdio::null()).spawn().unwrap();
    let log = root.join("t/npe-s0.log");
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("epoch 1/")) {
        assert!(t0.elapsed().as_secs() < 60, "the first study's run did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, _, err) = run(npe().arg("study").arg(&file).arg("--root").arg(&root));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another `npe study` is running this study"), "{err}");
    assert!(!err.contains("FAILED"), "{err}");
    // Looking is allowed while it runs: the table so far, with the run in progress.
    let (code, _, err) = run(npe().arg("study").arg(&file).arg("--root").arg(&root).arg("--report-only"));
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(root.join("t/results.md")).unwrap();
    assert!(md.contains("0 of 1 runs finished") && md.contains("**npe seed 0** (in progress"), "{md}");
    // SIGKILL: the study cannot clean up; its child must still go.
    first.kill().unwrap();
    first.wait().unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let lock = std::fs::File::open(root.join("t/npe-s0/.npe.lock")).unwrap();
        if lock.try_lock().is_ok() {
            break;
        }
        assert!(t0.elapsed().as_secs() < 10, "the orphaned `npe train` still holds its run's lock");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
