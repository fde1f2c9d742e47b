//! `npe predict` on a trained run: on a labelled image folder, the argmax of every output
//! (raw, NPE-LA, post-hoc LA and the calibrated `scale: auto` and `predicted`) gives exactly the
//! accuracy `npe eval` reports; outputs needing a calibration the run lacks, unknown outputs and
//! unreadable images get clear errors (or are skipped and listed).

mod common;
use common::*;
use std::path::Path;

/// The quickstart's synthetic data written as an image folder (PNGs of `root/{train,test}/<class>/`).
fn write_folder(root: &Path) {
    let spec = npe_core::spec::DataSpec::from_yaml(
        "{source: synthetic, synthetic: {classes: 4, size: 12, per_class: 200, test_per_class: 25, noise: 0.8}}",
    )
    .unwrap();
    let ds = npe_core::data::load(&spec, 0).unwrap();
    for (name, split) in [("train", &ds.train), ("test", &ds.test)] {
        let npe_core::data::Pixels::Dense(d) = &split.pixels else { panic!() };
        for i in 0..split.len() {
            let storage = split.index[i] as usize;
            let dir = root.join(name).join(format!("c{}", split.label(i)));
            std::fs::create_dir_all(&dir).unwrap();
            image::GrayImage::from_raw(12, 12, d.image(storage).to_vec())
                .unwrap()
                .save(dir.join(format!("{i:04}.png")))
                .unwrap();
        }
    }
}

const SETS: &[&str] = &[
    "data.source=image_folder",
    "data.num_classes=4",
    "~data.synthetic",
    "data.augment.center_crop=12",
    "data.long_tail.imbalance_factor=10",
    "train.epochs=3",
    "nodes.prior.count=1",
    "nodes.npe_auto:={kind: npe_la, logits: logits, pem: prior, scale: auto}",
    "nodes.predicted:={kind: posthoc_la, input: logits, prior: predicted}",
    "nodes.accuracy.inputs:=[logits, npe, npe_auto, predicted, posthoc]",
    "nodes.accuracy.groups={by: index, head: 1, tail: 2}",
    "eval.prior_train_samples=100",
];

fn sets(root: &Path) -> Vec<String> {
    let mut v = vec!["--set".to_string(), format!("data.root={}", root.display())];
    for s in SETS {
        v.extend(["--set".into(), s.to_string()]);
    }
    v
}

#[test]
fn predict_on_a_labelled_folder_gives_npe_eval_accuracy_for_every_output() {
    let data = tempfile::tempdir().unwrap();
    write_folder(data.path());
    let run_dir = tempfile::tempdir().unwrap();
    let out = run_dir.path().join("run");
    let mut train = npe();
    train
        .args(["train", "pipelines/quickstart.yaml", "--progress", "quiet", "--out"])
        .arg(&out)
        .args(sets(data.path()));
    let (code, _, err) = run(&mut train);
    assert_eq!(code, 0, "{err}");
    assert!(out.join("calibration.json").is_file(), "training stores the calibrations");
    let mut eval = npe();
    eval.args(["eval", "pipelines/quickstart.yaml", "--json", "--checkpoint"]).arg(out.join("model.safetensors"));
    let (code, stdout, err) = run(eval.args(sets(data.path())));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let jsonl = run_dir.path().join("p.jsonl");
    let mut predict = npe();
    predict.arg("predict").arg(&out).arg(data.path().join("test")).arg("--top-k").arg("1").arg("--output").arg(&jsonl);
    let (code, _, err) = run(&mut predict);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "images of the model's size: {err}");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 100);
    for output in ["logits", "npe", "npe_auto", "predicted", "posthoc"] {
        let right = lines
            .iter()
            .filter(|l| {
                let truth = Path::new(l["file"].as_str().unwrap())
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                l["outputs"][output][0]["class"].as_str().unwrap() == truth
            })
            .count();
        let eval_overall = report["accuracy"]["accuracy"][output]["overall"]
            .as_f64()
            .unwrap_or_else(|| panic!("no overall accuracy of {output}: {report}"));
        assert!(
            (right as f64 / 100.0 - eval_overall).abs() < 1e-9,
            "{output}: predict {right}/100 vs npe eval {eval_overall}"
        );
    }
    // CSV and the table.
    let csv = run_dir.path().join("p.csv");
    let (code, _, err) = run(npe()
        .arg("predict")
        .arg(&out)
        .arg(data.path().join("test/c0"))
        .args(["--outputs", "npe_auto", "--output"])
        .arg(&csv));
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with("file,output,rank,class,index,probability\n") && text.lines().count() == 1 + 25 * 3,
        "{text}"
    );
    let (code, table, _) = run(npe().arg("predict").arg(&out).arg(data.path().join("test/c2/0030.png")));
    assert_eq!(code, 0);
    assert!(table.contains("0030.png") && table.contains("npe_auto") && table.contains('%'), "{table}");

    // An image smaller than the centre crop is said to be padded.
    let big = run_dir.path().join("small.png");
    image::GrayImage::new(8, 6).save(&big).unwrap();
    let (code, _, err) = run(npe().arg("predict").arg(&out).arg(&big));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 of 1 images") && err.contains("8×6") && err.contains("12×12"), "{err}");

    // An unknown output, and a calibrated output with no stored calibration.
    let (code, _, err) =
        run(npe().arg("predict").arg(&out).arg(data.path().join("test")).args(["--outputs", "npe_autp"]));
    assert_eq!(code, 1);
    assert!(err.contains("unknown output `npe_autp`") && err.contains("npe_auto"), "{err}");
    let beside = std::fs::read(out.join("model.calibration.json")).expect("npe eval stores its calibrations");
    for f in ["calibration.json", "summary.json", "model.calibration.json"] {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let (code, _, err) = run(npe().arg("predict").arg(&out).arg(data.path().join("test")));
    assert_eq!(code, 1);
    assert!(err.contains("output `npe_auto` needs its calibration") && err.contains("npe eval"), "{err}");
    let (code, _, err) =
        run(npe().arg("predict").arg(&out).arg(data.path().join("test")).args(["--outputs", "logits,npe,posthoc"]));
    assert_eq!(code, 0, "outputs without calibration still work: {err}");
    // `npe eval` stored them beside the model it evaluated (above): a model file with its
    // pipeline predicts every output again, with no training data.
    std::fs::write(out.join("model.calibration.json"), beside).unwrap();
    let mut p = npe();
    p.arg("predict").arg(out.join("model.safetensors")).arg(data.path().join("test/c1")).arg("--pipeline");
    let (code, table, err) = run(p.arg("pipelines/quickstart.yaml").args(sets(data.path())));
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("npe_auto") && table.contains("predicted"), "{table}");

    // An unreadable image fails naming it, or is skipped and listed.
    std::fs::write(data.path().join("test/c0/0060.png"), b"\x89PNG broken").unwrap();
    let args = ["--outputs", "logits"];
    let (code, _, err) = run(npe().arg("predict").arg(&out).arg(data.path().join("test")).args(args));
    assert_eq!(code, 1);
    assert!(err.contains("0060.png"), "{err}");
    let (code, stdout, err) =
        run(npe().arg("predict").arg(&out).arg(data.path().join("test")).args(args).args(["--on-corrupt", "skip"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("skipped unreadable image") && err.contains("0060.png"), "{err}");
    assert_eq!(stdout.lines().filter(|l| l.ends_with(".png")).count(), 99);
}
