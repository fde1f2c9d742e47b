//! Count-free calibration of the adjusters on unlabelled training images, on every compiled
//! backend: the classifier's mean posterior recovers the training prior (`posthoc_la`'s
//! `prior: predicted` matches post-hoc LA with the counts), `npe_la`'s `scale: auto` is the
//! reported scale, `readout: mean` adds the learned prior, and a read-out without training
//! images is refused with the fix.

mod common;
use common::*;
use npe_core::report::EvalReport;
use npe_core::train::Session;
use npe_core::{Registry, backend::Device};

const SMALL: &[&str] = &["data.synthetic.per_class=3000", "train.epochs=10", "data.loader.workers=1"];

const NODES: &[&str] = &[
    "nodes.npe_auto:={kind: npe_la, logits: logits, pem: prior, scale: auto}",
    "nodes.npe_mean:={kind: npe_la, logits: logits, pem: prior, readout: mean}",
    "nodes.predicted:={kind: posthoc_la, input: logits, prior: predicted}",
    "nodes.accuracy.inputs:=[logits, npe, npe_auto, npe_mean, predicted, posthoc]",
    "nodes.prior_fit.logits=logits",
];

fn train(
    backend: &dyn npe_core::backend::Backend,
    extra: &[&str],
    out: &std::path::Path,
) -> Result<EvalReport, String> {
    let sets: Vec<&str> = SMALL.iter().chain(NODES).chain(extra).copied().collect();
    let ir = ir_of_file("pipelines/quickstart.yaml", &sets);
    let mut s = Session::new(ir, &Registry::builtin(), backend, Device::Cpu).map_err(|e| e.to_string())?;
    s.train(&quiet_run(out)).map(|summary| summary.eval).map_err(|e| e.to_string())
}

#[test]
fn count_free_calibrations_recover_the_prior_and_use_the_reported_scale() {
    for backend in backends() {
        let name = backend.name();
        let dir = tempfile::tempdir().unwrap();
        let eval = train(backend.as_ref(), &[], dir.path()).unwrap();
        let prior = &eval.prior["prior_fit"];
        // The classifier's mean softmax over unlabelled training images is the training prior.
        let predicted = prior.train_predicted.as_ref().expect("prior_estimate with logits reports it");
        assert!(predicted.r > 0.99, "{name}: classifier prior r {}", predicted.r);
        assert!((predicted.slope - 1.0).abs() < 0.15, "{name}: classifier prior slope {}", predicted.slope);
        assert!(prior.train_posterior.is_some(), "{name}: the posterior read-out is reported");
        let acc = &eval.accuracy["accuracy"];
        let (counts, pred) = (acc["posthoc"].mean_per_class, acc["predicted"].mean_per_class);
        assert!((counts - pred).abs() < 0.015, "{name}: post-hoc LA with counts {counts} vs predicted prior {pred}");
        assert!(pred > acc["logits"].mean_per_class + 0.03, "{name}: the predicted prior must help");

        // `readout: mean` adds h̄, the vector whose softmax(−h̄) is the reported learned prior.
        let mean = eval.calibration["npe_mean"].vector.clone().expect("a read-out vector");
        let m = mean.iter().map(|h| -h).fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = mean.iter().map(|h| (-h - m).exp()).sum();
        let est = &prior.train.as_ref().unwrap().estimate;
        for (k, h) in mean.iter().enumerate() {
            assert!(((-h - m).exp() / z - est[k]).abs() < 1e-4, "{name}: class {k}: read-out vs learned prior");
        }
        let lp = eval.calibration["predicted"].vector.clone().expect("an estimated log-prior");
        let share: f64 = lp.iter().map(|v| v.exp()).sum();
        assert!((share - 1.0).abs() < 1e-3, "{name}: the predicted prior sums to {share}");

        // `scale: auto` is the scale it reports: fixing that scale gives the same predictions.
        let s = eval.calibration["npe_auto"].scale;
        assert!(s.is_finite() && s > 0.2 && s < 5.0, "{name}: fitted scale {s}");
        let fixed = format!("nodes.npe_auto:={{kind: npe_la, logits: logits, pem: prior, scale: {s}}}");
        let again = train(backend.as_ref(), &[&fixed], tempfile::tempdir().unwrap().path()).unwrap();
        let (auto, fixed) = (&acc["npe_auto"], &again.accuracy["accuracy"]["npe_auto"]);
        assert_eq!(auto.per_class, fixed.per_class, "{name}: scale auto ({s}) vs the same scale fixed");
        assert!(!again.calibration.contains_key("npe_auto"), "{name}: a fixed scale needs no calibration");
    }
}

#[test]
fn a_read_out_without_training_images_names_the_setting() {
    // Found by `npe check`, before any training (it used to fail after the last epoch).
    let (code, _, err) = run(npe().args(["check", "pipelines/quickstart.yaml", "--set", "eval.prior_train_samples=0"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("prior_train_samples"), "{err}");
}

#[test]
fn scale_takes_a_positive_number_or_auto() {
    let (code, _, err) = run(npe().args(["check", "pipelines/quickstart.yaml", "--set", "nodes.npe.scale=autoo"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nodes.npe"), "{err}");
    let (code, _, err) = run(npe().args(["check", "pipelines/quickstart.yaml", "--set", "nodes.npe.scale=-1"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`scale` must be > 0 or `auto`"), "{err}");
    let (code, _, err) = run(npe().args(["check", "pipelines/quickstart.yaml", "--set", "nodes.npe.scale=auto"]));
    assert_eq!(code, 0, "{err}");
}
