//! End-to-end training on the built-in generated data, on every compiled backend: the loss
//! falls, NPE-LA raises tail accuracy over the raw logits, the learned prior ranks the classes
//! like the true prior, runs are deterministic, interrupted runs resume to the same weights,
//! `npe eval` reproduces the training's final metrics, and bad runs fail with clear errors.

mod common;
use common::*;
use npe_core::train::{Session, TrainError, TrainOptions};
use npe_core::{Registry, backend::Device};
use std::path::Path;

/// quickstart.yaml made smaller so every backend trains it in about a second. (With fewer than
/// ~10 epochs the PEM estimate is still too steep and NPE-LA over-corrects the head classes.)
const SMALL: &[&str] = &["data.synthetic.per_class=3000", "train.epochs=10", "data.loader.workers=1"];

fn opts(out: &Path) -> TrainOptions {
    quiet_run(out)
}

#[test]
fn loss_falls_npe_la_lifts_the_tail_and_the_prior_ranks_classes() {
    for backend in backends() {
        let ir = ir_of_file("pipelines/quickstart.yaml", SMALL);
        let mut s = Session::new(ir, &Registry::builtin(), backend.as_ref(), Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let summary = s.train(&opts(dir.path())).unwrap();
        let name = backend.name();
        let records: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 10, "{name}: one metrics line per epoch");
        let first = records[0]["train_loss"]["ce"].as_f64().unwrap();
        let last = records[9]["train_loss"]["ce"].as_f64().unwrap();
        assert!(last < 0.7 * first, "{name}: CE should fall: {first} -> {last}");
        let acc = &summary.eval.accuracy["accuracy"];
        let (raw, npe) = (&acc["logits"], &acc["npe"]);
        assert!(
            npe.tail.unwrap() > raw.tail.unwrap() + 0.20,
            "{name}: tail raw {:?} vs NPE-LA {:?}",
            raw.tail,
            npe.tail
        );
        assert!(npe.mean_per_class > raw.mean_per_class, "{name}: mean per-class accuracy should rise");
        let prior = &summary.eval.prior["prior_fit"];
        let fit = prior.train.as_ref().unwrap();
        assert!(fit.spearman >= 0.9, "{name}: Spearman of learned vs true prior {}", fit.spearman);
        assert!(fit.r > 0.9, "{name}: Pearson r {}", fit.r);
        // The reports say what the data is.
        let summary_json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary_json["data"]["provenance"], "synthetic");
        assert!(dir.path().join("model.safetensors").is_file());
        // Plots of the run: curves with one line per output, per-class bars, the prior scatter.
        for f in ["curves.svg", "per_class.svg", "prior.svg"] {
            let svg = std::fs::read_to_string(dir.path().join(f)).unwrap_or_else(|e| panic!("{name}: {f}: {e}"));
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{name}: {f}");
        }
        for f in ["curves.png", "per_class.png", "prior.png"] {
            let png = image::open(dir.path().join(f)).unwrap_or_else(|e| panic!("{name}: {f}: {e}"));
            assert_eq!((png.width(), png.height()), (1440, 720), "{name}: {f} is its SVG at twice the size");
        }
        let curves = std::fs::read_to_string(dir.path().join("curves.svg")).unwrap();
        assert_eq!(curves.matches("<polyline").count(), 4, "{name}: 3 outputs + the loss");
        let prior = std::fs::read_to_string(dir.path().join("prior.svg")).unwrap();
        assert_eq!(prior.matches("<circle").count(), 10, "{name}: one point per class");
    }
}

fn final_params(
    backend: &dyn npe_core::backend::Backend,
    sets: &[&str],
    out: &Path,
    stop_after: Option<u64>,
    resume: bool,
) -> Result<Vec<npe_core::model::NamedTensor>, TrainError> {
    let ir = ir_of_file("pipelines/quickstart.yaml", sets);
    let mut s = Session::new(ir, &Registry::builtin(), backend, Device::Cpu).unwrap();
    let mut o = opts(out);
    o.stop_after_steps = stop_after;
    o.resume = resume;
    s.train(&o)?;
    Ok(tensors(&out.join("model.safetensors")))
}

#[test]
fn a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let sets = ["data.synthetic.per_class=1500", "train.epochs=3", "data.loader.workers=2"];
    for backend in backends() {
        let name = backend.name();
        let a = tempfile::tempdir().unwrap();
        let whole = final_params(backend.as_ref(), &sets, a.path(), None, false).unwrap();
        // Interrupt in the middle of epoch 2 (a step limit writes a mid-epoch checkpoint), resume.
        let b = tempfile::tempdir().unwrap();
        match final_params(backend.as_ref(), &sets, b.path(), Some(40), false) {
            Err(TrainError::Interrupted { epoch: 2, batch, .. }) => assert!(batch > 0, "{name}: mid-epoch"),
            other => panic!("{name}: expected an interruption in epoch 2, got {other:?}"),
        }
        let resumed = final_params(backend.as_ref(), &sets, b.path(), None, true).unwrap();
        assert_eq!(max_rel_diff(&whole, &resumed), 0.0, "{name}: resumed weights differ");
        let lines = std::fs::read_to_string(b.path().join("metrics.jsonl")).unwrap().lines().count();
        assert_eq!(lines, 3, "{name}: one metrics line per epoch after resuming");
        // The interrupted epoch's mean loss covers all its steps, as in the uninterrupted run.
        let loss = |dir: &Path| -> Vec<f64> {
            std::fs::read_to_string(dir.join("metrics.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"]["total"].as_f64().unwrap())
                .collect()
        };
        assert_eq!(loss(a.path()), loss(b.path()), "{name}: epoch mean losses differ after resuming");
        // Without --resume an output folder with checkpoints is refused, not overwritten.
        let err = final_params(backend.as_ref(), &sets, b.path(), None, false).unwrap_err();
        assert!(err.to_string().contains("add --resume"), "{err}");
    }
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let sets = ["data.synthetic.per_class=800", "train.epochs=2"];
    for backend in backends() {
        let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let x = final_params(backend.as_ref(), &sets, a.path(), None, false).unwrap();
        let y = final_params(backend.as_ref(), &sets, b.path(), None, false).unwrap();
        assert_eq!(
            std::fs::read(a.path().join("model.safetensors")).unwrap(),
            std::fs::read(b.path().join("model.safetensors")).unwrap()
        );
        assert_eq!(max_rel_diff(&x, &y), 0.0);
        let mut other = sets.to_vec();
        other.push("seed=1");
        let z = final_params(backend.as_ref(), &other, c.path(), None, false).unwrap();
        assert!(max_rel_diff(&x, &z) > 1e-3);
    }
}

#[test]
fn killed_process_resumes_from_its_last_checkpoint_to_the_same_weights() {
    // A real SIGKILL in the middle of training: checkpoints are atomic, so --resume continues
    // from the newest complete one and ends exactly where an uninterrupted run ends.
    let sets = ["--set", "data.synthetic.per_class=4000", "--set", "train.epochs=8", "--progress", "quiet"];
    let whole = tempfile::tempdir().unwrap();
    let (code, _, err) = run(npe().args(["train", "pipelines/quickstart.yaml", "--out"]).arg(whole.path()).args(sets));
    assert_eq!(code, 0, "{err}");
    let out = tempfile::tempdir().unwrap();
    let mut child = npe()
        .args(["train", "pipelines/quickstart.yaml", "--out"])
        .arg(out.path())
        .args(sets)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = out.path().join("checkpoints/epoch-0001.safetensors");
    let t0 = std::time::Instant::now();
    while !first.exists() && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run finished before it could be killed; make it longer");
    assert!(!out.path().join("model.safetensors").exists());
    let (code, _, err) =
        run(npe().args(["train", "pipelines/quickstart.yaml", "--resume", "--out"]).arg(out.path()).args(sets));
    assert_eq!(code, 0, "{err}");
    let a = tensors(&whole.path().join("model.safetensors"));
    let b = tensors(&out.path().join("model.safetensors"));
    assert_eq!(max_rel_diff(&a, &b), 0.0, "resumed weights differ from the uninterrupted run");
}

#[test]
fn npe_eval_reproduces_the_final_metrics_of_training() {
    let dir = tempfile::tempdir().unwrap();
    let sets = ["--set", "data.synthetic.per_class=1000", "--set", "train.epochs=2", "--progress", "quiet"];
    let (code, _, err) = run(npe().args(["train", "pipelines/quickstart.yaml", "--out"]).arg(dir.path()).args(sets));
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    for ck in ["model.safetensors", "checkpoints/epoch-0002.safetensors"] {
        let (code, out, err) = run(npe()
            .args(["eval", "pipelines/quickstart.yaml", "--json", "--checkpoint"])
            .arg(dir.path().join(ck))
            .args(&sets[..4]));
        assert_eq!(code, 0, "{err}");
        let eval: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            eval["accuracy"], summary["eval"]["accuracy"],
            "{ck}: accuracy differs from training's final evaluation"
        );
        assert_eq!(eval["prior"], summary["eval"]["prior"], "{ck}: prior estimate differs");
    }
    // `npe compare` puts the run and a saved evaluation side by side, naming the data.
    let eval_json = dir.path().join("again.json");
    let (_, out, _) = run(npe()
        .args(["eval", "pipelines/quickstart.yaml", "--json", "--checkpoint"])
        .arg(dir.path().join("model.safetensors"))
        .args(&sets[..4]));
    std::fs::write(&eval_json, out).unwrap();
    let (code, out, err) = run(npe().arg("compare").arg(dir.path()).arg(&eval_json));
    assert_eq!(code, 0, "{err}");
    let npe_mean = summary["eval"]["accuracy"]["accuracy"]["npe"]["mean_per_class"].as_f64().unwrap();
    let cell = format!("{:.2}", 100.0 * npe_mean);
    let rows: Vec<&str> = out.lines().filter(|l| l.split_whitespace().nth(1) == Some("npe")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows.iter().all(|r| r.contains(&cell)), "NPE-LA {cell} in both rows: {out}");
    let run_name = dir.path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(out.contains(&format!("data of {run_name}, again: ")) && out.contains("synthetic data"), "{out}");
    let (code, _, err) = run(npe().args(["compare", "no/such/run"]));
    assert_eq!(code, 1);
    assert!(err.contains("no/such/run: no such run"), "{err}");
    // The human-readable report has the per-class table and group rows.
    let (code, out, _) = run(npe()
        .args(["eval", "pipelines/quickstart.yaml", "--checkpoint"])
        .arg(dir.path().join("model.safetensors"))
        .args(&sets[..4]));
    assert_eq!(code, 0);
    assert!(out.contains("head") && out.contains("class_9") && out.contains("mean per-class accuracy"), "{out}");
    // A checkpoint of another model is refused with a reason.
    let other = tempfile::tempdir().unwrap();
    let (_, _, _) = run(npe()
        .args(["train", "pipelines/quickstart.yaml", "--set", "nodes.features.hidden=[32]", "--out"])
        .arg(other.path())
        .args(sets));
    let (code, _, err) = run(npe()
        .args(["eval", "pipelines/quickstart.yaml", "--checkpoint"])
        .arg(other.path().join("model.safetensors"))
        .args(&sets[..4]));
    assert_eq!(code, 1);
    assert!(err.contains("written for a different model"), "{err}");
}

#[test]
fn a_diverging_run_stops_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(npe()
        .args([
            "train",
            "pipelines/quickstart.yaml",
            "--progress",
            "quiet",
            "--set",
            "train.optimizer.lr=1.0e6",
            "--set",
            "train.epochs=2",
            "--out",
        ])
        .arg(dir.path()));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the training loss is not finite") && err.contains("lower `train.optimizer.lr`"), "{err}");
}

/// Weights that explode while the loss stays finite (lr 3 on the quickstart) are divergence
/// too: no checkpoint of such a model is written, and the error names the tensor.
#[test]
fn an_exploding_but_finite_model_is_not_checkpointed() {
    for backend in ["burn", "tch"].into_iter().filter(|b| backends().iter().any(|x| x.name() == *b)) {
        let dir = tempfile::tempdir().unwrap();
        let (code, _, err) = run(npe()
            .args(["train", "pipelines/quickstart.yaml", "--progress", "quiet", "--backend", backend])
            .args(["--set", "train.optimizer.lr=3", "--set", "train.epochs=2", "--set", "train.threads=1", "--out"])
            .arg(dir.path()));
        assert_eq!(code, 1, "{backend}: {err}");
        assert!(err.contains("the model diverged") && err.contains("holds values of magnitude"), "{backend}: {err}");
        let written = std::fs::read_dir(dir.path().join("checkpoints")).map_or(0, |d| d.count());
        assert_eq!(written, 0, "{backend}: no checkpoint of an exploded model");
    }
}

#[test]
fn missing_data_says_how_to_get_it() {
    let (code, _, err) = run(npe().args(["train", "pipelines/cifar10_lt.yaml"]));
    assert_eq!(code, 1);
    assert!(err.contains("`data.root` is not set") && err.contains("cs.toronto.edu"), "{err}");
    let (code, _, err) =
        run(npe().args(["data", "pipelines/fashion_mnist_lt.yaml", "--set", "data.root=/nonexistent/fmnist"]));
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/fmnist") && err.contains("dataset-fashion-mnist"), "{err}");
}
