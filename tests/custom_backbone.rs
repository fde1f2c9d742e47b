//! A user program adds a backbone kind without forking npe (examples/custom_backbone.rs): its
//! `npe` validates, graphs and trains pipelines using the new kind on every compiled backend;
//! the stock `npe` rejects the kind with a located error.

mod common;
use common::{npe, root, run};
use std::process::Command;

fn example() -> Command {
    example_named("custom_backbone")
}

fn example_named(name: &str) -> Command {
    // cargo builds examples next to the test executables: target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.is_file(), "example binary not built at {}", path.display());
    let mut c = Command::new(path);
    c.current_dir(root());
    c
}

#[test]
fn a_user_defined_backbone_checks_graphs_and_trains() {
    let (code, out, err) = run(example().args(["check", "examples/custom_backbone.yaml"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"), "{out}");
    let (code, kinds, _) = run(example().arg("kinds"));
    assert_eq!(code, 0);
    assert!(kinds.contains("conv_stack"), "{kinds}");
    let (code, dot, _) = run(example().args(["graph", "examples/custom_backbone.yaml"]));
    assert_eq!(code, 0);
    assert!(dot.contains("conv_stack"), "{dot}");
    let backends: &[&str] = if cfg!(feature = "tch") { &["burn", "tch"] } else { &["burn"] };
    for backend in backends {
        let dir = tempfile::tempdir().unwrap();
        let (code, _, err) = run(example()
            .args(["train", "examples/custom_backbone.yaml", "--progress", "quiet", "--backend", backend])
            .args(["--set", "train.epochs=2", "--set", "data.synthetic.per_class=1000", "--out"])
            .arg(dir.path()));
        assert_eq!(code, 0, "{backend}: {err}");
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
        let acc = summary["eval"]["accuracy"]["accuracy"]["logits"]["mean_per_class"].as_f64().unwrap();
        assert!(acc > 0.2, "{backend}: the custom backbone should learn something, got {acc}");
        // Its parameters are exported under the node's name.
        let names: Vec<String> =
            common::tensors(&dir.path().join("model.safetensors")).into_iter().map(|t| t.name).collect();
        assert!(names.contains(&"features.convs.1.weight".to_string()), "{names:?}");
    }
    // Bad parameters of the custom kind are reported like any other.
    let bad = tempfile::tempdir().unwrap();
    let p = bad.path().join("bad.yaml");
    std::fs::write(
        &p,
        std::fs::read_to_string(root().join("examples/custom_backbone.yaml"))
            .unwrap()
            .replace("channels: [16, 32]", "channels: []"),
    )
    .unwrap();
    let (code, _, err) = run(example().arg("check").arg(&p));
    assert_eq!(code, 2);
    assert!(err.contains("bad.yaml:12:") && err.contains("`channels` needs at least one layer"), "{err}");
}

#[test]
fn the_stock_npe_does_not_know_the_custom_kind() {
    let (code, _, err) = run(npe().args(["check", "examples/custom_backbone.yaml"]));
    assert_eq!(code, 2);
    assert!(err.contains("examples/custom_backbone.yaml:12:21: error: unknown node kind `conv_stack`"), "{err}");
}

/// The second example: a pre-activation ResNet defined once, trained with AdamW and a parameter
/// group, on every compiled backend; the optimiser state in its checkpoint is AdamW's.
#[test]
fn a_preact_resnet_defined_once_trains_with_adamw_on_every_backend() {
    let backends: &[&str] = if cfg!(feature = "tch") { &["burn", "tch"] } else { &["burn"] };
    let mut accs = vec![];
    for backend in backends {
        let dir = tempfile::tempdir().unwrap();
        let (code, _, err) = run(example_named("preact_resnet")
            .args(["train", "examples/preact_resnet.yaml", "--progress", "quiet", "--backend", backend])
            .args(["--set", "train.epochs=4", "--out"])
            .arg(dir.path()));
        assert_eq!(code, 0, "{backend}: {err}");
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
        let acc = summary["eval"]["accuracy"]["accuracy"]["logits"]["mean_per_class"].as_f64().unwrap();
        assert!(acc > 0.4, "{backend}: the pre-activation ResNet should learn, got {acc}");
        // The PEM, kept on SGD by its parameter group, ranks the classes by frequency.
        let r = summary["eval"]["prior"]["prior_fit"]["train"]["r"].as_f64();
        assert!(r.is_some_and(|r| r > 0.8), "{backend}: learned prior r = {r:?}\n{}", summary["eval"]["prior"]);
        accs.push(acc);
        let names: Vec<String> =
            common::tensors(&dir.path().join("model.safetensors")).into_iter().map(|t| t.name).collect();
        assert!(names.contains(&"features.stages.1.0.projection.weight".to_string()), "{names:?}");
        let ck = std::fs::read_dir(dir.path().join("checkpoints")).unwrap().next().unwrap().unwrap().path();
        let ck = npe_core::checkpoint::Checkpoint::load(&ck).unwrap();
        let state: Vec<String> = ck.optimizer.into_iter().map(|t| t.name).collect();
        for want in
            ["features.stem.weight.exp_avg", "features.stem.weight.exp_avg_sq", "optimizer.step", "prior.0.weight"]
        {
            assert!(state.iter().any(|n| n == want), "{want} missing from {state:?}");
        }
    }
    if accs.len() == 2 {
        assert!((accs[0] - accs[1]).abs() < 0.05, "burn and tch disagree: {accs:?}");
    }
}
