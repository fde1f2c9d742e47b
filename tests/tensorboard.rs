//! `train.tensorboard: true` writes event files that TensorBoard itself reads back: checked with
//! the `tensorboard` Python package (scripts/test.sh installs it into `.venv-torch`; set
//! `TENSORBOARD_PYTHON` to use another Python).

mod common;
use common::{npe, root, run};

#[test]
fn event_files_read_back_with_the_tensorboard_package() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(npe()
        .args(["train", "pipelines/quickstart.yaml", "--progress", "quiet", "--set", "train.tensorboard=true"])
        .args(["--set", "train.epochs=3", "--set", "data.synthetic.per_class=300", "--out"])
        .arg(dir.path()));
    assert_eq!(code, 0, "{err}");
    let python = std::env::var("TENSORBOARD_PYTHON")
        .unwrap_or_else(|_| root().join(".venv-torch/bin/python").display().to_string());
    let script = r#"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1]); acc.Reload()
tags = acc.Tags()["scalars"]
for t in ["loss/total", "train/lr", "accuracy/npe/mean_per_class", "prior_fit/r"]:
    ev = acc.Scalars(t)
    print(t, len(ev), [e.step for e in ev], round(ev[-1].value, 4))
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(dir.path().join("tensorboard"))
        .output()
        .unwrap_or_else(|e| {
            panic!("{python}: {e}\n  hint: run scripts/test.sh (it installs tensorboard), or set TENSORBOARD_PYTHON")
        });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for tag in ["loss/total 3 [1, 2, 3]", "train/lr 3", "accuracy/npe/mean_per_class 3", "prior_fit/r 3"] {
        assert!(text.contains(tag), "{tag} missing:\n{text}");
    }
    // The last accuracy equals the summary's.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    let acc = summary["eval"]["accuracy"]["accuracy"]["npe"]["mean_per_class"].as_f64().unwrap();
    let line = text.lines().find(|l| l.starts_with("accuracy/npe/mean_per_class")).unwrap();
    let last: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((last - acc).abs() < 1e-3, "{last} vs {acc}");
}
