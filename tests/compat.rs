//! Files written by npe before "one definition per node" (commit 935d31d, fixtures in
//! `tests/fixtures/v0/run`) still work: today's npe evaluates the model to the same numbers and
//! resumes the checkpoint (parameters, buffers, momentum) on every backend.

mod common;
use common::{npe, root, run};

fn fixture(p: &str) -> String {
    format!("tests/fixtures/v0/{p}")
}

fn mean_per_class(v: &serde_json::Value, output: &str) -> f64 {
    v["accuracy"]["accuracy"][output]["mean_per_class"].as_f64().unwrap_or_else(|| panic!("no {output} in {v}"))
}

#[test]
fn a_model_written_by_the_old_npe_evaluates_to_its_recorded_numbers() {
    let old: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join(fixture("run/summary.json"))).unwrap()).unwrap();
    // A copy: `npe eval` stores its calibrations beside the model, not in the repository.
    let copy = tempfile::tempdir().unwrap();
    let model = copy.path().join("model.safetensors");
    std::fs::copy(root().join(fixture("run/model.safetensors")), &model).unwrap();
    for backend in common::backends() {
        let (code, out, err) = run(npe()
            .args(["eval", &fixture("pipeline.yaml"), "--json", "--backend", backend.name(), "--checkpoint"])
            .arg(&model)
            .args(["--set", "train.epochs=1"]));
        assert_eq!(code, 0, "{}: {err}", backend.name());
        let now: serde_json::Value = serde_json::from_str(&out).unwrap();
        for output in ["logits", "npe"] {
            let (a, b) = (mean_per_class(&old["eval"], output), mean_per_class(&now, output));
            assert!((a - b).abs() < 1e-9, "{}: {output} was {a}, now {b}", backend.name());
        }
    }
}

#[test]
fn a_checkpoint_written_by_the_old_npe_resumes() {
    for backend in common::backends() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("checkpoints")).unwrap();
        for f in ["run.json", "pipeline.yaml", "metrics.jsonl", "checkpoints/epoch-0001.safetensors"] {
            std::fs::copy(root().join(fixture(&format!("run/{f}"))), dir.path().join(f)).unwrap();
        }
        let (code, _, err) = run(npe()
            .args(["train", &fixture("pipeline.yaml"), "--resume", "--progress", "quiet", "--backend", backend.name()])
            .args(["--set", "train.epochs=2", "--out"])
            .arg(dir.path()));
        assert_eq!(code, 0, "{}: {err}", backend.name());
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["epochs"], 2, "{summary}");
        assert!(mean_per_class(&summary["eval"], "logits") > 0.3, "{summary}");
    }
}
