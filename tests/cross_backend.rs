//! burn and tch agree: same pipeline, same initial weights (exported from burn and imported
//! into tch through the named-tensor interface), same batches.
//!
//! What agreement is possible, and why: both backends compute the same formulas (the core fixes
//! the parameter layout, initial values, SGD update, loss and NPE-LA definitions) but not with
//! the same kernels: libtorch convolves through oneDNN and its own BLAS, burn's flex backend
//! through the `gemm` crate. They sum in different orders, so backward passes differ in the
//! last bits (forward losses are often bit-identical for the first steps). For the MLP and the
//! small CNN this stays below 1e-6 relative over 20 SGD steps. A ResNet-20 at lr 0.05 and batch
//! 64 is chaotic early in training: measured here, burn against *itself* with every initial
//! weight multiplied by (1 + 1e-7) drifts to 1.4e-3 relative loss difference by step 8 and
//! ~7e-3 by step 19, while burn against tch reaches 1.1e-3 only at step 14. No pair of
//! implementations with different kernels can hold 1e-3 there, so for the ResNet the test
//! requires 1e-3 over the first 5 steps and a drift no larger than that perturbation floor.
#![cfg(all(feature = "burn", feature = "tch"))]

mod common;
use common::*;
use npe_backend_burn::BurnBackend;
use npe_backend_tch::TchBackend;
use npe_core::Registry;
use npe_core::backend::{Backend, Device, Request};
use npe_core::data;
use npe_core::ir::Ir;
use npe_core::train::Session;

const STEPS: usize = 20;
const LR: f64 = 0.05;

fn session(ir: &Ir, ds: &data::Dataset, backend: &dyn Backend) -> Session {
    Session::with_data(ir.clone(), ds.clone(), &Registry::builtin(), backend, Device::Cpu).unwrap()
}

/// Train `a` and `b` side by side on the same batches; worst relative loss difference per step.
fn drift(a: &mut Session, b: &mut Session, name: &str) -> Vec<f64> {
    let loader = a.train_loader().clone();
    let verbose = std::env::var_os("NPE_TEST_VERBOSE").is_some();
    (0..STEPS)
        .map(|step| {
            let batch = loader.batch(0, step % loader.len()).unwrap();
            let la = a.exec.train_step(&batch, LR).unwrap();
            let lb = b.exec.train_step(&batch, LR).unwrap();
            let mut worst = 0f64;
            for ((na, va), (nb, vb)) in la.parts.iter().zip(&lb.parts) {
                assert_eq!(na, nb);
                let rel = (va - vb).abs() / va.abs().max(1e-12);
                if verbose {
                    eprintln!("{name} step {step:>2} {na:<9} {va:.9} vs {vb:.9} rel {rel:.2e}");
                }
                worst = worst.max(rel);
            }
            worst
        })
        .collect()
}

/// Fraction of test predictions (raw logits and NPE-LA) on which two sessions agree.
fn prediction_agreement(a: &mut Session, b: &mut Session) -> f64 {
    let test = data::loader(&a.data, &a.data.test, &a.ir.data_spec, data::SplitKind::Eval, 500, false, 0).unwrap();
    let req = [Request::Argmax("logits".into()), Request::Argmax("npe".into())];
    let (mut same, mut total) = (0usize, 0usize);
    for batch in test.iter(0, 0) {
        let batch = batch.unwrap();
        let (pa, pb) = (a.exec.infer(&batch, &req).unwrap(), b.exec.infer(&batch, &req).unwrap());
        for (x, y) in pa.iter().zip(&pb) {
            same += x.data.iter().zip(&y.data).filter(|(p, q)| p == q).count();
            total += x.data.len();
        }
    }
    same as f64 / total as f64
}

/// burn vs tch from burn's initial weights: per-step drift and prediction agreement.
fn burn_vs_tch(ir: &Ir, name: &str) -> (Vec<f64>, f64) {
    let ds = data::load(&ir.data_spec, ir.seed).unwrap();
    let mut b = session(ir, &ds, &BurnBackend::default());
    let mut t = session(ir, &ds, &TchBackend::default());
    let w = b.exec.export().unwrap();
    t.exec.import(&w).unwrap();
    assert_eq!(max_rel_diff(&w, &t.exec.export().unwrap()), 0.0, "{name}: import changed values");
    let d = drift(&mut b, &mut t, name);
    let agree = prediction_agreement(&mut b, &mut t);
    eprintln!(
        "{name}: burn vs tch worst relative loss difference over {STEPS} steps {:.2e}; prediction agreement {:.2}%",
        max(&d),
        100.0 * agree
    );
    (d, agree)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

#[test]
fn mlp_with_pems_agrees() {
    let ir = ir_of_file("pipelines/quickstart.yaml", &["data.synthetic.per_class=2000"]);
    let (d, agree) = burn_vs_tch(&ir, "mlp");
    assert!(max(&d) <= 1e-3, "mlp: losses differ by {:.2e}", max(&d));
    assert!(agree >= 0.99, "mlp: predictions agree on {:.2}%", 100.0 * agree);
}

#[test]
fn small_cnn_with_batch_norm_agrees() {
    let yaml = quickstart_with_features("{kind: small_cnn, input: data, channels: [8, 16, 32]}");
    let ir = ir_of(&yaml, &["data.synthetic.per_class=1000", "data.synthetic.channels=3", "data.synthetic.size=16"]);
    let (d, agree) = burn_vs_tch(&ir, "small_cnn");
    assert!(max(&d) <= 1e-3, "small_cnn: losses differ by {:.2e}", max(&d));
    assert!(agree >= 0.99, "small_cnn: predictions agree on {:.2}%", 100.0 * agree);
}

#[test]
fn resnet20_agrees_up_to_its_own_rounding_sensitivity() {
    let yaml = quickstart_with_features("{kind: resnet_cifar, input: data, depth: 20, width: 8}");
    let ir = ir_of(
        &yaml,
        &[
            "data.synthetic.per_class=600",
            "data.synthetic.channels=3",
            "data.synthetic.size=16",
            "data.augment={random_crop: {size: 16, padding: 2}, hflip: true}",
            "train.batch_size=64",
        ],
    );
    let (d, agree) = burn_vs_tch(&ir, "resnet_cifar");
    // The model's own sensitivity: burn against burn with weights scaled by (1 + 1e-7).
    let ds = data::load(&ir.data_spec, ir.seed).unwrap();
    let mut a = session(&ir, &ds, &BurnBackend::default());
    let mut p = session(&ir, &ds, &BurnBackend::default());
    let mut w = a.exec.export().unwrap();
    w.iter_mut().for_each(|t| t.data.iter_mut().for_each(|v| *v *= 1.0 + 1e-7));
    p.exec.import(&w).unwrap();
    let floor = drift(&mut a, &mut p, "burn(1+1e-7)");
    eprintln!("resnet_cifar: perturbation floor {:.2e} over {STEPS} steps", max(&floor));
    assert!(max(&d[..5]) <= 1e-3, "resnet_cifar: early steps differ by {:.2e}", max(&d[..5]));
    assert!(
        max(&d) <= max(&floor),
        "resnet_cifar: burn vs tch drift {:.2e} exceeds the rounding floor {:.2e}",
        max(&d),
        max(&floor)
    );
    assert!(agree >= 0.95, "resnet_cifar: predictions agree on {:.2}%", 100.0 * agree);
    // Forward semantics alone: burn's trained weights (and BN statistics) imported into tch
    // predict the same on ≥ 99% of the test split.
    let mut t = session(&ir, &ds, &TchBackend::default());
    t.exec.import(&a.exec.export().unwrap()).unwrap();
    let same_weights = prediction_agreement(&mut a, &mut t);
    eprintln!("resnet_cifar: same trained weights, prediction agreement {:.2}%", 100.0 * same_weights);
    assert!(same_weights >= 0.99, "resnet_cifar: same weights, predictions agree on {:.2}%", 100.0 * same_weights);
}

#[test]
fn a_model_trained_on_burn_evaluates_the_same_on_tch() {
    let dir = tempfile::tempdir().unwrap();
    let sets = ["--set", "data.synthetic.per_class=1500", "--set", "train.epochs=3"];
    let (code, _, err) = run(npe()
        .args(["train", "pipelines/quickstart.yaml", "--progress", "quiet", "--backend", "burn", "--out"])
        .arg(dir.path())
        .args(sets));
    assert_eq!(code, 0, "{err}");
    let eval = |backend: &str| -> serde_json::Value {
        let (code, out, err) = run(npe()
            .args(["eval", "pipelines/quickstart.yaml", "--json", "--backend", backend, "--checkpoint"])
            .arg(dir.path().join("model.safetensors"))
            .args(sets));
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let (b, t) = (eval("burn"), eval("tch"));
    for output in ["logits", "npe", "posthoc"] {
        let acc = |v: &serde_json::Value| v["accuracy"]["accuracy"][output]["mean_per_class"].as_f64().unwrap();
        assert!((acc(&b) - acc(&t)).abs() <= 0.005, "{output}: burn {} vs tch {}", acc(&b), acc(&t));
    }
    let r = |v: &serde_json::Value| v["prior"]["prior_fit"]["test"]["r"].as_f64().unwrap();
    assert!((r(&b) - r(&t)).abs() < 1e-3);
}
