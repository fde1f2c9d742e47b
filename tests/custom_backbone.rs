//! A user program adds a backbone kind without forking npe (examples/custom_backbone.rs): its
//! `npe` validates, graphs and trains pipelines using the new kind on every compiled backend;
//! the stock `npe` rejects the kind with a located error.

mod common;
use common::{npe, root, run};
use std::process::Command;

fn example() -> Command {
    // cargo builds examples next to the test executables: target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(format!("custom_backbone{}", std::env::consts::EXE_SUFFIX));
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
