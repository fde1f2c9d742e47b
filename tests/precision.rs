//! Mixed precision (`train.precision`) and channels-last (`train.channels_last`): on tch a conv
//! net trains in bf16 autocast to the accuracy of float32; backends and devices without it say so
//! before any training.

mod common;
use common::*;

const SMALL: &[&str] = &["data.synthetic.per_class=2000", "train.epochs=6", "data.loader.workers=1", "train.threads=1"];
const CNN: &str = "{kind: small_cnn, input: data, channels: [16, 32]}";

fn train(backend: &str, extra: &[&str]) -> (i32, String, String, Option<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, quickstart_with_features(CNN)).unwrap();
    let mut cmd = npe();
    cmd.arg("train")
        .arg(&file)
        .args(["--backend", backend, "--progress", "quiet", "--out"])
        .arg(dir.path().join("out"));
    for s in SMALL.iter().chain(extra) {
        cmd.args(["--set", s]);
    }
    let (code, out, err) = run(&mut cmd);
    let summary = std::fs::read(dir.path().join("out/summary.json")).ok().map(|b| serde_json::from_slice(&b).unwrap());
    (code, out, err, summary)
}

fn raw(summary: &serde_json::Value) -> f64 {
    summary["eval"]["accuracy"]["accuracy"]["logits"]["mean_per_class"].as_f64().unwrap()
}

#[test]
fn bf16_channels_last_trains_a_conv_net_like_fp32_on_tch() {
    if !backends().iter().any(|b| b.name() == "tch") {
        panic!("this test needs the tch backend (cargo test --features tch)");
    }
    let (code, _, err, fp32) = train("tch", &[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err, bf16) = train("tch", &["train.precision=bf16", "train.channels_last=true"]);
    assert_eq!(code, 0, "{err}");
    let (fp32, bf16) = (fp32.unwrap(), bf16.unwrap());
    assert!(bf16["backend"].as_str().unwrap().contains("bf16 autocast"), "{}", bf16["backend"]);
    let (a, b) = (raw(&fp32), raw(&bf16));
    assert!(b > 0.3, "bf16 must learn (chance is 0.1): {b}");
    assert!((a - b).abs() < 0.03, "fp32 {a} vs bf16 {b}");
    let npe = bf16["eval"]["accuracy"]["accuracy"]["npe"]["mean_per_class"].as_f64().unwrap();
    assert!(npe > b, "NPE-LA {npe} over raw {b} in bf16 as well");
}

#[test]
fn a_backend_or_device_without_the_precision_says_so_before_training() {
    if backends().iter().any(|b| b.name() == "burn") {
        let (code, _, err, _) = train("burn", &["train.precision=bf16"]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("no bf16 mixed precision") && err.contains("--backend tch"), "{err}");
        assert!(!err.contains("epoch 1"), "refused before training: {err}");
    }
    if backends().iter().any(|b| b.name() == "tch") {
        let (code, _, err, _) = train("tch", &["train.precision=fp16"]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("fp16 mixed precision needs a CUDA device"), "{err}");
    }
    let (code, _, err, _) = train("tch", &["train.precision=fp8"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("train.precision"), "{err}");
}
