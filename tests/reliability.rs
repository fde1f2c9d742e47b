//! What the "reliability" issue found on the old main, each reproduced here as a user would
//! meet it: damaged checkpoints, two runs in one folder, resume corner cases, settings that
//! are not numbers, devices that are not there.

mod common;
use common::{SMALL_QUICKSTART, npe, run};
use std::path::Path;

fn train(out: &Path, extra: &[&str]) -> (i32, String, String) {
    run(npe()
        .args(["train", "pipelines/quickstart.yaml", "--progress", "quiet"])
        .args(SMALL_QUICKSTART)
        .args(extra)
        .arg("--out")
        .arg(out))
}

fn checkpoints(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn settings_that_are_not_finite_or_train_nothing_are_located_errors() {
    for (set, want) in [
        ("data.synthetic.test_per_class=0", "data.synthetic.test_per_class"),
        ("nodes.posthoc.tau=.nan", "`tau` must be a finite number"),
        ("nodes.ce.weight=.inf", "`weight` must be a finite number"),
        ("data.synthetic.noise=.nan", "data.synthetic.noise"),
        ("train.schedule.min_lr=.inf", "`min_lr` a finite number"),
        ("train.max_steps_per_epoch=0", "`max_steps_per_epoch` must be at least 1"),
        ("train.checkpoint.keep_last=0", "`keep_last` must be at least 1"),
        ("name=../../x", "must be a plain folder name"),
    ] {
        let (code, _, err) = run(npe().args(["check", "pipelines/quickstart.yaml", "--set", set]));
        assert_eq!(code, 2, "{set}: {err}");
        assert!(err.contains(want), "{set}: {err}");
        assert!(err.contains("pipelines/quickstart.yaml:") || err.contains("--set"), "{set}: not located: {err}");
        // One mistake, one error: a data error does not drag a false one about the groups along.
        assert!(!err.contains("head ≤ tail ≤ 0"), "{set}: {err}");
    }
}

#[test]
fn a_device_that_is_not_there_is_a_flag_error_before_any_data_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // The data root does not exist: a device error must come first, with exit 2.
    let (code, _, err) = run(npe()
        .args(["train", "pipelines/fashion_mnist_lt.yaml", "--device", "wgpu", "--set", "data.root=/nonexistent"])
        .arg("--out")
        .arg(dir.path()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--device wgpu") && !err.contains("/nonexistent"), "{err}");
    assert!(!dir.path().join("run.json").exists(), "nothing is written for a refused run");
}

#[test]
fn a_refused_run_leaves_the_folder_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = train(dir.path(), &["--set", "train.epochs=1"]);
    assert_eq!(code, 0, "{err}");
    let before = std::fs::read(dir.path().join("run.json")).unwrap();
    let (code, _, err) = train(dir.path(), &["--set", "train.epochs=2", "--set", "seed=9"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already holds checkpoints"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("run.json")).unwrap(), before, "run.json was overwritten");
}

#[test]
fn two_runs_cannot_share_an_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = npe()
        .args(["train", "pipelines/quickstart.yaml", "--progress", "quiet", "--set", "train.epochs=500"])
        .arg("--out")
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run holds the folder (it writes run.json after locking it).
    let t0 = std::time::Instant::now();
    while !dir.path().join("run.json").exists() {
        assert!(t0.elapsed().as_secs() < 60, "the first run never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let before = std::fs::read(dir.path().join("run.json")).unwrap();
    let (code, _, err) = train(dir.path(), &["--resume"]);
    first.kill().unwrap();
    let _ = first.wait();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another npe run is writing into"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("run.json")).unwrap(), before);
}

#[test]
fn resuming_a_finished_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = train(dir.path(), &["--set", "train.epochs=2"]);
    assert_eq!(code, 0, "{err}");
    let summary = std::fs::read(dir.path().join("summary.json")).unwrap();
    let (code, _, err) = train(dir.path(), &["--set", "train.epochs=2", "--resume"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("finished all 2 epochs already"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("summary.json")).unwrap(), summary, "summary.json was rewritten");
}

#[test]
fn the_newest_checkpoint_is_the_one_resumed_also_mid_epoch_and_beyond_epoch_9999() {
    let dir = tempfile::tempdir().unwrap();
    // 12 steps per epoch: step 18 is in the middle of epoch 2.
    let (code, _, err) = train(dir.path(), &["--stop-after-steps", "18"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(checkpoints(dir.path()), ["epoch-0001-batch-000006.safetensors", "epoch-0001.safetensors"]);
    let (code, _, err) = train(dir.path(), &["--resume", "--stop-after-steps", "24"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("resuming from checkpoint at epoch 2, batch 6"), "{err}");
    // A step limit at an epoch's end stops there too (it used to run on).
    assert!(err.contains("interrupted at epoch 3, batch 0"), "{err}");
}

#[test]
fn a_damaged_newest_checkpoint_names_the_good_one_and_fallback_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = train(dir.path(), &["--stop-after-steps", "30"]);
    assert_eq!(code, 3, "{err}");
    let names = checkpoints(dir.path());
    let newest = dir.path().join("checkpoints").join(names.iter().find(|n| n.contains("batch")).unwrap());
    let mut bytes = std::fs::read(&newest).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();
    let (code, _, err) = train(dir.path(), &["--resume"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is damaged")
            && err.contains("the newest good checkpoint is")
            && err.contains("epoch-0002.safetensors"),
        "{err}"
    );
    let (code, _, err) = train(dir.path(), &["--resume", "--fallback"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_checkpoint_of_another_seed_or_missing_its_optimiser_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = train(dir.path(), &["--stop-after-steps", "12"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = train(dir.path(), &["--resume", "--set", "seed=5"]);
    assert_eq!(code, 2, "the run's fingerprint refuses it first: {err}");
    assert!(err.contains("seed: 0 → 5"), "{err}");
    // Changes allowed, the checkpoint itself still refuses another seed.
    let (code, _, err) = train(dir.path(), &["--resume", "--set", "seed=5", "--allow-changes"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("seed 0; this run has seed 5"), "{err}");
    // The same checkpoint with its momentum buffers removed.
    let path = dir.path().join("checkpoints/epoch-0001.safetensors");
    let mut ck = npe_core::checkpoint::Checkpoint::load(&path).unwrap();
    ck.optimizer.clear();
    ck.save(&path).unwrap();
    let (code, _, err) = train(dir.path(), &["--resume"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("has no optimiser state"), "{err}");
}

#[test]
fn npe_data_verify_lists_every_unreadable_image() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    for split in ["train", "test"] {
        for (c, class) in ["cat", "dog"].iter().enumerate() {
            for i in 0..3 {
                let p = root.join(split).join(class).join(format!("{i}.png"));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                image::RgbImage::from_pixel(8, 8, image::Rgb([40 * c as u8, 9, 9])).save(&p).unwrap();
            }
        }
    }
    std::fs::write(root.join("train/dog/empty.jpg"), b"").unwrap();
    std::fs::write(root.join("test/cat/notes.jpg"), b"this is text").unwrap();
    let pipeline = dir.path().join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: v\ndata:\n  source: image_folder\n  root: {}\n  num_classes: 2\n  augment: {{resize: 8, center_crop: 8}}\nnodes:\n  f: {{kind: mlp, input: data, hidden: [8]}}\n  l: {{kind: linear, input: f}}\n  ce: {{kind: cross_entropy, input: l}}\n",
            root.display()
        ),
    )
    .unwrap();
    let (code, _, err) = run(npe().args(["data", "--verify"]).arg(&pipeline));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("empty.jpg") && err.contains("notes.jpg"), "{err}");
    assert!(err.contains("2 of 14 files cannot be decoded"), "{err}");
    std::fs::remove_file(root.join("train/dog/empty.jpg")).unwrap();
    std::fs::remove_file(root.join("test/cat/notes.jpg")).unwrap();
    let (code, _, err) = run(npe().args(["data", "--verify"]).arg(&pipeline));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("verified: all 12 image files decode"), "{err}");
}

#[test]
fn an_unreadable_image_stops_training_naming_it_unless_on_corrupt_skip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    for split in ["train", "test"] {
        for (c, class) in ["cat", "dog"].iter().enumerate() {
            for i in 0..8 {
                let p = root.join(split).join(class).join(format!("{i}.png"));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                image::RgbImage::from_pixel(8, 8, image::Rgb([100 * c as u8, 9, i as u8])).save(&p).unwrap();
            }
        }
    }
    std::fs::write(root.join("train/dog/broken.jpg"), b"not an image").unwrap();
    let pipeline = dir.path().join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: v\ndata:\n  source: image_folder\n  root: {}\n  num_classes: 2\n  augment: {{resize: 8, center_crop: 8}}\nnodes:\n  f: {{kind: mlp, input: data, hidden: [8]}}\n  l: {{kind: linear, input: f}}\n  ce: {{kind: cross_entropy, input: l}}\n  accuracy: {{kind: accuracy, inputs: [l]}}\ntrain: {{epochs: 1, batch_size: 4}}\n",
            root.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("run");
    let (code, _, err) = run(npe().arg("train").arg(&pipeline).args(["--progress", "quiet", "--out"]).arg(&out));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("broken.jpg"), "{err}");
    let out = dir.path().join("run2");
    let (code, _, err) = run(npe()
        .arg("train")
        .arg(&pipeline)
        .args(["--progress", "quiet", "--set", "data.on_corrupt=skip", "--out"])
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let skipped = summary["data"]["skipped_files"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{summary}");
    assert!(skipped[0].as_str().unwrap().ends_with("broken.jpg"));
    assert_eq!(summary["data"]["train_images"], 16);
}

#[test]
fn the_scripts_own_npe_variables_are_not_pipeline_overrides() {
    let (code, _, err) = run(npe()
        .args(["check", "pipelines/quickstart.yaml"])
        .env("NPE_TORCH_VENV", "/opt/venv")
        .env("NPE_TORCH_FULL", "1"));
    assert_eq!(code, 0, "{err}");
}

/// Hostile input that aborted the process (a stack overflow is SIGABRT, not an error) before:
/// an `NPE_` value nested 2,000 deep (the same value through `--set` was already an error).
#[test]
fn an_environment_override_nested_2000_deep_is_a_located_error_not_an_abort() {
    let deep = "[".repeat(2000);
    let (code, _, err) = run(npe().args(["check", "pipelines/quickstart.yaml"]).env("NPE_DESCRIPTION", &deep));
    assert_eq!(code, 2, "an error, not a signal: {err}");
    assert!(err.contains("NPE_DESCRIPTION") && err.contains("levels deep") && err.contains("unset"), "{err}");
    let (code, _, err) =
        run(npe().args(["check", "pipelines/quickstart.yaml"]).env("NPE_DESCRIPTION", "[a, [b, {c: d}]]"));
    assert_ne!(err.contains("levels deep"), true, "shallow values are read as before: {err}");
    assert!(code == 0 || code == 2, "{err}");
}

/// A 400 KB CIFAR python pickle of lists nested 200,000 deep: an error naming the file, not an
/// abort (dropping the nested value recursed once per level).
#[test]
fn a_cifar_pickle_nested_200k_deep_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let py = dir.path().join("cifar-10-batches-py");
    std::fs::create_dir(&py).unwrap();
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', 200_000));
    deep.extend(std::iter::repeat_n(b'a', 199_999));
    deep.push(b'.');
    for f in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"] {
        std::fs::write(py.join(f), &deep).unwrap();
    }
    let (code, _, err) = run(npe()
        .args(["data", "pipelines/cifar10_lt.yaml", "--set"])
        .arg(format!("data.root={}", dir.path().display())));
    assert_eq!(code, 1, "an error, not a signal: {err}");
    assert!(err.contains("data_batch_1"), "{err}");
}

/// List-file labels were stored as u16: with 70,000 classes, labels 65536 and 65537 became 0
/// and 1. `npe data` counts them where they belong.
#[test]
fn list_file_labels_beyond_65535_keep_their_class() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for (i, label) in [0u32, 65_536, 65_537, 69_999].iter().enumerate() {
        let rel = format!("img/{i}.png");
        std::fs::create_dir_all(dir.path().join("img")).unwrap();
        image::RgbImage::from_pixel(8, 8, image::Rgb([i as u8 * 40, 0, 0])).save(dir.path().join(&rel)).unwrap();
        lines.push_str(&format!("{rel} {label}\n"));
    }
    for f in ["ImageNet_LT_train.txt", "ImageNet_LT_test.txt"] {
        std::fs::write(dir.path().join(f), &lines).unwrap();
    }
    let (code, out, err) = run(npe()
        .args(["data", "pipelines/imagenet_lt.yaml", "--json", "--set", "data.num_classes=70000", "--set"])
        .arg(format!("data.root={}", dir.path().display())));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let counts = v["train_counts"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(counts.len(), 70_000);
    for (class, n) in [(0, 1), (1, 0), (65_536, 1), (65_537, 1), (69_999, 1)] {
        assert_eq!(counts[class], n, "class {class}");
    }
}

/// `--resume --set train.optimizer.lr=0.5` continued silently and rewrote run.json to show only
/// the new flags. Now it is refused naming the change, unless --allow-changes (recorded in
/// resumes.jsonl); run.json keeps what the run was started with.
#[test]
fn resume_refuses_other_settings_unless_allowed_and_keeps_run_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (code, _, err) = train(&out, &["--stop-after-steps", "20"]);
    assert_eq!(code, 3, "{err}");
    let run_json = std::fs::read(out.join("run.json")).unwrap();
    let (code, _, err) = train(&out, &["--resume", "--set", "train.optimizer.lr=0.5"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("train.optimizer.lr: ") && err.contains("→ 0.5") && err.contains("--allow-changes"), "{err}");
    let (code, _, err) = train(&out, &["--resume", "--set", "train.optimizer.lr=0.5", "--allow-changes"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(out.join("run.json")).unwrap(), run_json, "run.json is never rewritten by a resume");
    let resumes = std::fs::read_to_string(out.join("resumes.jsonl")).unwrap();
    assert!(resumes.contains("train.optimizer.lr") && resumes.contains("--allow-changes"), "{resumes}");
    let (code, _, err) = train(&out, &["--resume"]);
    assert_eq!(code, 0, "resuming the finished run with its own settings: {err}");
    assert_eq!(std::fs::read(out.join("run.json")).unwrap(), run_json);
}

/// `eval.prior_train_samples: 0` with a `prior_estimate` node passed `npe check` and failed
/// only after the last epoch; now `npe check` names the setting and the node.
#[test]
fn npe_check_catches_a_prior_fit_without_training_images() {
    let (code, _, err) = run(npe().args(["check", "pipelines/quickstart.yaml", "--set", "eval.prior_train_samples=0"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("prior_train_samples") && err.contains("node `prior_fit`"), "{err}");
    let (code, _, err) = run(npe().args([
        "check",
        "pipelines/quickstart.yaml",
        "--set",
        "eval.prior_train_samples=0",
        "--set",
        "~nodes.prior_fit",
    ]));
    assert_eq!(code, 0, "no node reads training images: {err}");
}

/// A kill while the final files were written left a resumed summary.json with
/// `final_train_loss: {}` and `train_seconds: 0`: the resume trains nothing, so its totals now
/// come from the run's records.
#[test]
fn a_run_resumed_after_its_last_epoch_reports_its_real_totals() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = train(dir.path(), &["--set", "train.epochs=2"]);
    assert_eq!(code, 0, "{err}");
    let read = |p: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let whole = read(&dir.path().join("summary.json"));
    std::fs::remove_file(dir.path().join("summary.json")).unwrap();
    let (code, _, err) = train(dir.path(), &["--set", "train.epochs=2", "--resume"]);
    assert_eq!(code, 0, "{err}");
    let resumed = read(&dir.path().join("summary.json"));
    assert_eq!(resumed["final_train_loss"], whole["final_train_loss"], "{resumed}");
    assert!(resumed["train_seconds"].as_f64().unwrap() > 0.0, "{resumed}");
    assert_eq!(resumed["eval"]["accuracy"], whole["eval"]["accuracy"]);
}

/// burn reported "(cpu, 2 threads)" under `train.threads: 1` (its pool had been started by
/// an earlier device check); the report now matches the setting.
#[test]
fn burn_runs_and_reports_the_threads_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) =
        train(dir.path(), &["--backend", "burn", "--set", "train.threads=1", "--set", "train.epochs=1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("burn 0.22 flex (cpu, 1 threads)"), "{err}");
}

/// Sizes that aborted on allocation (or panicked spawning threads) are located errors in
/// `npe check`, naming the memory they would take.
#[test]
fn absurd_sizes_are_located_errors_not_aborts() {
    for (set, want) in [
        ("data.synthetic.classes=4000000000", "more than npe supports"),
        ("data.synthetic.per_class=1000000000", "would take"),
        ("data.loader.prefetch=1000000000", "data.loader.prefetch"),
        ("data.loader.workers=100000", "data.loader.workers"),
        ("train.threads=100000", "train.threads"),
        ("nodes.features.hidden=[1000000,1000000]", "more than npe supports (2147483648); node `features`"),
    ] {
        let (code, _, err) = run(npe().args(["check", "pipelines/quickstart.yaml", "--set", set]));
        assert_eq!(code, 2, "{set}: {err}");
        assert!(err.contains(want), "{set}: {err}");
    }
    let (code, _, err) =
        run(npe().args(["check", "pipelines/imagenet_lt.yaml", "--set", "data.num_classes=4000000000"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("4000000000 classes is more than npe supports"), "{err}");
}

/// `npe eval --checkpoint` took a same-architecture model trained on other data without a
/// word; models now carry what they were trained on, and evaluating on other data warns.
#[test]
fn evaluating_a_model_on_other_data_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = train(dir.path(), &["--set", "train.epochs=1"]);
    assert_eq!(code, 0, "{err}");
    let eval = |extra: &[&str]| {
        run(npe()
            .args(["eval", "pipelines/quickstart.yaml", "--json", "--checkpoint"])
            .arg(dir.path().join("model.safetensors"))
            .args(SMALL_QUICKSTART)
            .args(extra))
    };
    let (code, _, err) = eval(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("other data"), "same data, no warning: {err}");
    let (code, _, err) = eval(&["--set", "data.long_tail.imbalance_factor=10"]);
    assert_eq!(code, 0, "a warning, not a refusal: {err}");
    assert!(err.contains("trained on other data") && err.contains("data.long_tail.imbalance_factor: 100"), "{err}");
}

/// `--set train.epochs=5 --set eval.every_epochs=5` (one evaluation, at the last epoch) failed
/// after training, losing the last checkpoint; it now finishes, with its plots and checkpoint.
#[test]
fn a_single_evaluation_at_the_last_epoch_finishes_with_plots_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = train(dir.path(), &["--set", "train.epochs=2", "--set", "eval.every_epochs=2"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("Polyline"), "no plotting warnings: {err}");
    for f in ["summary.json", "curves.png", "prior.png"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    assert!(checkpoints(dir.path()).iter().any(|c| c.contains("0002")), "{:?}", checkpoints(dir.path()));
}
