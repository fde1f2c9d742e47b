//! Segmentation end to end on every compiled backend, on the semi-synthetic `seg_digits` set
//! (built from the real Fashion-MNIST images that `scripts/test.sh` installs): the per-pixel loss
//! falls and NPE-LA raises the IoU of the tail classes over the raw logits; post-hoc mode trains
//! only the PEMs of a frozen model, leaving every other parameter and statistic bit-identical.

mod common;
use common::*;
use npe_core::Registry;
use npe_core::backend::Device;
use npe_core::train::{Session, TrainOptions};

/// seg_digits_lt.yaml shrunk to seconds: 32×32 canvases, 600 of them, a two-level U-Net.
const TINY: &[&str] = &[
    "data.seg_digits.canvas=32",
    "data.seg_digits.train_images=600",
    "data.seg_digits.test_images=200",
    "data.seg_digits.items=[1, 3]",
    "nodes.features.channels=[8, 16]",
    "train.epochs=6",
    "train.batch_size=16",
    "eval.prior_train_samples=200",
];

fn opts(out: &std::path::Path) -> TrainOptions {
    quiet_run(out)
}

#[test]
fn tiny_segmentation_training_lifts_tail_iou_with_npe_la() {
    for backend in backends() {
        let name = backend.name();
        let ir = ir_of_file("pipelines/seg_digits_lt.yaml", TINY);
        let mut s = Session::new(ir, &Registry::builtin(), backend.as_ref(), Device::Cpu).unwrap();
        assert_eq!(s.data.provenance, npe_core::data::Provenance::SemiSynthetic);
        let dir = tempfile::tempdir().unwrap();
        let summary = s.train(&opts(dir.path())).unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ce = |i: usize| lines[i]["train_loss"]["ce"].as_f64().unwrap();
        assert!(ce(5) < 0.8 * ce(0), "{name}: per-pixel CE should fall: {} -> {}", ce(0), ce(5));
        let iou = &summary.eval.segmentation["iou"];
        let (raw, npe) = (&iou["logits"], &iou["npe"]);
        let (rt, nt) = (raw.tail_miou.unwrap(), npe.tail_miou.unwrap());
        assert!(nt > rt + 0.01, "{name}: tail IoU raw {rt:.4} vs NPE-LA {nt:.4}");
        assert!(npe.miou > raw.miou, "{name}: mIoU raw {:.4} vs NPE-LA {:.4}", raw.miou, npe.miou);
        let prior = summary.eval.prior["prior_fit"].train.as_ref().unwrap();
        assert!(prior.spearman > 0.9, "{name}: learned pixel prior ranks classes: {}", prior.spearman);
    }
}

/// quickstart.yaml without its PEMs: the "existing model" of post-hoc mode.
fn ce_only() -> String {
    let text = std::fs::read_to_string(root().join("pipelines/quickstart.yaml")).unwrap();
    text.lines()
        .filter(|l| !["prior:", "pem_loss:", "npe:", "prior_fit:"].iter().any(|k| l.trim_start().starts_with(k)))
        .map(|l| {
            if l.trim_start().starts_with("accuracy:") {
                l.replace("[logits, npe, posthoc]", "[logits, posthoc]")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn posthoc_mode_trains_only_the_pems_of_a_frozen_model() {
    let sets = ["data.synthetic.per_class=2000", "train.epochs=3"];
    for backend in backends() {
        let name = backend.name();
        let ce_dir = tempfile::tempdir().unwrap();
        let mut ce =
            Session::new(ir_of(&ce_only(), &sets), &Registry::builtin(), backend.as_ref(), Device::Cpu).unwrap();
        ce.train(&opts(ce_dir.path())).unwrap();
        let base = tensors(&ce_dir.path().join("model.safetensors"));
        // PEMs only: backbone and classifier frozen, initialised from the CE model; CE loss dropped.
        let model = ce_dir.path().join("model.safetensors");
        let init = format!("train.init_from={}", model.display());
        let posthoc_sets = [sets[0], "train.epochs=2", "train.freeze=[features, logits]", init.as_str()];
        let text = std::fs::read_to_string(root().join("pipelines/quickstart.yaml"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("ce:"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut ph =
            Session::new(ir_of(&text, &posthoc_sets), &Registry::builtin(), backend.as_ref(), Device::Cpu).unwrap();
        let ph_dir = tempfile::tempdir().unwrap();
        let summary = ph.train(&opts(ph_dir.path())).unwrap();
        let after = tensors(&ph_dir.path().join("model.safetensors"));
        for t in &base {
            let a = after.iter().find(|x| x.name == t.name).unwrap_or_else(|| panic!("{name}: {} missing", t.name));
            assert_eq!(a.data, t.data, "{name}: frozen `{}` changed", t.name);
        }
        let pems: Vec<_> = after.iter().filter(|t| t.name.starts_with("prior.")).collect();
        assert_eq!(pems.len(), 6, "{name}: 3 PEMs × (weight, bias)");
        let init_w = npe_core::model::initial_values(&ph.params, 0);
        let w0 = init_w.iter().find(|t| t.name == "prior.0.weight").unwrap();
        assert_ne!(
            pems.iter().find(|t| t.name == "prior.0.weight").unwrap().data,
            w0.data,
            "{name}: PEMs should learn"
        );
        // The frozen model's raw accuracy is unchanged; NPE-LA on it helps the tail.
        let acc = &summary.eval.accuracy["accuracy"];
        assert!(acc["npe"].tail.unwrap() > acc["logits"].tail.unwrap(), "{name}: post-hoc NPE-LA should lift the tail");
        // Evaluating the post-hoc model needs only its own checkpoint, not the `init_from` file.
        drop(ce_dir);
        let mut ev =
            Session::new(ir_of(&text, &posthoc_sets), &Registry::builtin(), backend.as_ref(), Device::Cpu).unwrap();
        ev.load_params(&ph_dir.path().join("model.safetensors")).unwrap();
        let again = ev.evaluate().unwrap();
        let mean = |r: &npe_core::report::EvalReport| r.accuracy["accuracy"]["npe"].mean_per_class;
        assert_eq!(mean(&again), acc["npe"].mean_per_class, "{name}: eval reproduces the post-hoc run");
    }
}
