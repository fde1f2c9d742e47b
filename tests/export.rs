//! `npe export --format onnx` on trained runs of the quickstart MLP, ResNet-32, the U-Net and a
//! user-defined backbone (examples/custom_backbone.rs): `onnx.checker` accepts each file, and
//! ONNX Runtime gives every output (raw, NPE-LA, `scale: auto`, `predicted`, post-hoc LA) within
//! 1e-4 of `npe predict` (softmax probabilities) with the same argmax; label maps identical.
//! Needs onnxruntime, onnx and pillow in `.venv-torch` (scripts/test.sh installs them).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> String {
    std::env::var("TENSORBOARD_PYTHON").unwrap_or_else(|_| root().join(".venv-torch/bin/python").display().to_string())
}

/// `scripts/onnx_check.py ARGS`, its JSON report.
fn check(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out =
        Command::new(python()).arg(root().join("scripts/onnx_check.py")).args(args).output().unwrap_or_else(|e| {
            panic!(
                "{}: {e}\n  hint: run scripts/test.sh (it installs onnxruntime), or set TENSORBOARD_PYTHON",
                python()
            )
        });
    assert!(out.status.success(), "onnx_check.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Generated images as `root/{train,test}/c<k>/NNNN.png`: `classes` smooth prototypes of
/// `size`² pixels and `channels` channels, with noise.
fn write_folder(root: &Path, classes: usize, size: usize, channels: usize, per_class: usize) {
    let spec = npe_core::spec::DataSpec::from_yaml(&format!(
        "{{source: synthetic, synthetic: {{classes: {classes}, size: {size}, channels: {channels}, per_class: {per_class}, test_per_class: 6, noise: 0.8}}}}"
    ))
    .unwrap();
    let ds = npe_core::data::load(&spec, 0).unwrap();
    for (name, split) in [("train", &ds.train), ("test", &ds.test)] {
        let npe_core::data::Pixels::Dense(d) = &split.pixels else { panic!() };
        for i in 0..split.len() {
            let dir = root.join(name).join(format!("c{}", split.label(i)));
            std::fs::create_dir_all(&dir).unwrap();
            let px = d.image(split.index[i] as usize).to_vec();
            let path = dir.join(format!("{i:04}.png"));
            if channels == 1 {
                image::GrayImage::from_raw(size as u32, size as u32, px).unwrap().save(path).unwrap();
            } else {
                image::RgbImage::from_raw(size as u32, size as u32, px).unwrap().save(path).unwrap();
            }
        }
    }
}

fn sets(v: &[String]) -> Vec<String> {
    v.iter().flat_map(|s| ["--set".to_string(), s.clone()]).collect()
}

/// Train `pipeline` with `set` into a temporary run, export it, predict `inputs` with every
/// class listed, and compare in ONNX Runtime.
fn train_export_compare(bin: &dyn Fn() -> Command, pipeline: &str, set: &[String], inputs: &Path, classes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let (code, _, err) =
        run(bin().args(["train", pipeline, "--progress", "quiet", "--out"]).arg(&run_dir).args(sets(set)));
    assert_eq!(code, 0, "{pipeline}: {err}");
    let (code, out, err) = run(bin().arg("export").arg(&run_dir));
    assert_eq!(code, 0, "{pipeline}: {err}");
    assert!(out.contains("model.onnx") && run_dir.join("model.onnx").is_file(), "{out}");
    let jsonl = dir.path().join("p.jsonl");
    let (code, _, err) = run(bin()
        .arg("predict")
        .arg(&run_dir)
        .arg(inputs)
        .args(["--top-k", &classes.to_string(), "--output"])
        .arg(&jsonl));
    assert_eq!(code, 0, "{pipeline}: {err}");
    let report = check(&[run_dir.join("model.onnx").as_os_str(), jsonl.as_os_str()]);
    let outputs = report["outputs"].as_object().unwrap();
    assert!(!outputs.is_empty());
    for (o, r) in outputs {
        let diff = r["max_abs_diff"].as_f64().unwrap();
        assert!(diff <= 1e-4, "{pipeline} `{o}`: ONNX Runtime differs from npe predict by {diff}: {report}");
        assert_eq!(r["argmax_equal"], true, "{pipeline} `{o}`: {report}");
    }
    eprintln!("{pipeline}: {report}");
}

const CALIBRATED: [&str; 3] = [
    "nodes.npe_auto:={kind: npe_la, logits: logits, pem: prior, scale: auto}",
    "nodes.predicted:={kind: posthoc_la, input: logits, prior: predicted}",
    "nodes.accuracy.inputs:=[logits, npe, npe_auto, predicted, posthoc]",
];

fn folder_sets(root: &Path, classes: usize, size: usize, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        format!("data.root={}", root.display()),
        "data.source=image_folder".into(),
        format!("data.num_classes={classes}"),
        format!("data.augment.center_crop={size}"),
        "data.long_tail.profile=none".into(),
        "train.epochs=1".into(),
        "eval.prior_train_samples=40".into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v.extend(CALIBRATED.iter().map(|s| s.to_string()));
    v
}

#[test]
fn the_quickstart_mlp_exports_with_every_adjuster() {
    let data = tempfile::tempdir().unwrap();
    write_folder(data.path(), 4, 12, 1, 40);
    let set = folder_sets(
        data.path(),
        4,
        12,
        &["~data.synthetic", "nodes.prior.count=2", "nodes.accuracy.groups={by: index, head: 1, tail: 2}"],
    );
    train_export_compare(&npe, "pipelines/quickstart.yaml", &set, &data.path().join("test"), 4);
}

#[test]
fn resnet_32_exports_with_batch_norm_in_inference_form() {
    let data = tempfile::tempdir().unwrap();
    write_folder(data.path(), 10, 32, 3, 6);
    let set = folder_sets(
        data.path(),
        10,
        32,
        &["train.batch_size=16", "eval.batch_size=16", "train.schedule:={kind: cosine}"],
    );
    train_export_compare(&npe, "pipelines/cifar10_lt.yaml", &set, &data.path().join("test"), 10);
}

#[test]
fn a_user_defined_backbone_exports_without_export_code() {
    let exe = std::env::current_exe().unwrap();
    let path: PathBuf = exe.parent().unwrap().parent().unwrap().join("examples").join("custom_backbone");
    assert!(path.is_file(), "example binary not built at {}", path.display());
    let example = || {
        let mut c = Command::new(&path);
        c.current_dir(root());
        c
    };
    let data = tempfile::tempdir().unwrap();
    write_folder(data.path(), 4, 12, 1, 30);
    let mut set =
        folder_sets(data.path(), 4, 12, &["~data.synthetic", "nodes.accuracy.groups={by: index, head: 1, tail: 2}"]);
    set.retain(|s| !s.starts_with("nodes.predicted") && !s.starts_with("nodes.accuracy.inputs"));
    set.push("nodes.posthoc:={kind: posthoc_la, input: logits}".into());
    set.push("nodes.accuracy.inputs:=[logits, npe, npe_auto, posthoc]".into());
    train_export_compare(&example, "examples/custom_backbone.yaml", &set, &data.path().join("test"), 4);
}

#[test]
fn the_u_net_exports_and_gives_npe_predicts_label_maps() {
    // DRIVE's layout at 32×32 (the model's input, so no resampling is involved).
    let d = tempfile::tempdir().unwrap();
    let (w, h) = (32u32, 32u32);
    for (split, first) in [("training", 21), ("test", 1)] {
        for sub in ["images", "1st_manual", "mask"] {
            std::fs::create_dir_all(d.path().join(split).join(sub)).unwrap();
        }
        for i in first..first + 4 {
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                if x % 8 == i % 8 { image::Rgb([90, 30, 10]) } else { image::Rgb([200, (y * 4) as u8, 40]) }
            });
            img.save(d.path().join(format!("{split}/images/{i:02}_{split}.tif"))).unwrap();
            let lab = image::GrayImage::from_fn(w, h, |x, _| image::Luma([if x % 8 == i % 8 { 255 } else { 0 }]));
            image::DynamicImage::ImageLuma8(lab)
                .into_rgba8()
                .save_with_format(
                    d.path().join(format!("{split}/1st_manual/{i:02}_manual1.gif")),
                    image::ImageFormat::Gif,
                )
                .unwrap();
            image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(w, h, image::Luma([255])))
                .into_rgba8()
                .save_with_format(
                    d.path().join(format!("{split}/mask/{i:02}_{split}_mask.gif")),
                    image::ImageFormat::Gif,
                )
                .unwrap();
        }
    }
    let set: Vec<String> = [
        format!("data.root={}", d.path().display()),
        "data.augment.resize=32".into(),
        "data.augment.center_crop=32".into(),
        "nodes.features.channels=[4, 8]".into(),
        "train.epochs=1".into(),
        "train.batch_size=2".into(),
        "nodes.predicted:={kind: posthoc_la, input: logits, prior: predicted}".into(),
        "nodes.iou.inputs:=[logits, npe, posthoc, predicted]".into(),
    ]
    .to_vec();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let (code, _, err) = run(npe()
        .args(["train", "pipelines/drive.yaml", "--progress", "quiet", "--out"])
        .arg(&run_dir)
        .args(sets(&set)));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(npe().arg("export").arg(&run_dir));
    assert_eq!(code, 0, "{err}");
    let maps = dir.path().join("maps");
    let images = d.path().join("test/images");
    let (code, _, err) = run(npe().arg("predict").arg(&run_dir).arg(&images).arg("--output").arg(&maps));
    assert_eq!(code, 0, "{err}");
    // PNG copies of the TIFFs for the Python side (PIL reads either; keep the names).
    let mut args: Vec<std::ffi::OsString> = vec![run_dir.join("model.onnx").into(), "--maps".into(), maps.into()];
    for i in 1..=4 {
        args.push(images.join(format!("{i:02}_test.tif")).into());
    }
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let report = check(&refs);
    for (o, r) in report["outputs"].as_object().unwrap() {
        assert_eq!(r["argmax_equal"], true, "`{o}`: {report}");
    }
}
