//! `npe bench`: each configuration runs in a child and comes back as a typed row (what
//! `--json` prints), and the hidden `--child` spec is parsed strictly. Tiny settings: this
//! checks the plumbing, never a speed.

mod common;
use common::{npe, run};

fn rows(out: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array().expect("an array of rows").clone()
}

#[test]
fn bench_train_gives_one_row_per_configuration_with_its_rounds() {
    let (code, out, err) = run(npe().args(
        "bench train --backends tch --pems 0,1 --depth 20 --batch 4 --steps 2 --warmup 1 --rounds 2 --threads 1 --json"
            .split(' '),
    ));
    assert_eq!(code, 0, "{err}");
    let rows = rows(&out);
    let configs: Vec<&str> = rows.iter().map(|r| r["config"].as_str().unwrap()).collect();
    assert_eq!(configs, ["tch M=0", "tch M=1"]);
    for r in &rows {
        let (lo, mid, hi) =
            (r["img_s_min"].as_f64().unwrap(), r["img_s_median"].as_f64().unwrap(), r["img_s_max"].as_f64().unwrap());
        assert!(lo > 0.0 && lo <= mid && mid <= hi, "{r}");
        assert!(r["peak_rss_mb"].as_f64().unwrap() > 1.0, "{r}");
        assert!(r["describe"].as_str().unwrap().contains("tch"), "{r}");
        assert!(r["speed_vs_pytorch"].is_null(), "no PyTorch was asked for: {r}");
    }
    // Each of the 2 × 2 measurements is reported as it ends.
    assert_eq!(err.matches("round ").count(), 4, "{err}");
}

#[test]
fn bench_predict_gives_typed_rows() {
    let (code, out, err) = run(npe().args(
        "bench predict --backends tch --depth 20 --batch 4 --steps 1 --warmup 0 --rounds 1 --threads 1 --json"
            .split(' '),
    ));
    assert_eq!(code, 0, "{err}");
    let rows = rows(&out);
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["describe"].as_str().unwrap().starts_with("npe predict path"), "{}", rows[0]);
    assert!(rows[0]["img_s_median"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_bad_child_spec_is_an_error_not_a_guess() {
    for (what, spec, says) in [
        ("train", "gpu:1", "unknown backend `gpu`"),
        ("train", "tch:many", "`many` is not a PEM count"),
        ("predict", "tch:1", "expected a backend"),
    ] {
        let (code, out, err) = run(npe().args(["bench", what, "--child", spec, "--depth", "20", "--batch", "2"]));
        assert_eq!(code, 1, "{what} --child {spec}: {out}{err}");
        assert!(err.contains(says), "{what} --child {spec}: {err}");
    }
}

#[test]
fn bench_ops_times_every_layer_on_both_backends() {
    let (code, out, err) =
        run(npe().args("bench ops --backends burn,tch --depth 8 --batch 2 --reps 1 --threads 1 --json".split(' ')));
    assert_eq!(code, 0, "{err}");
    let rows = rows(&out);
    // ResNet-8: the stem (forward, weight gradient) and per stage its convolutions (forward and
    // both gradients), batch norm and ReLU + add (forward and backward); stages 2 and 3 add a
    // strided convolution.
    assert_eq!(rows.len(), 2 + 3 * (3 + 2 + 2) + 2 * 3, "{out}");
    for r in &rows {
        for b in ["burn", "tch"] {
            let ms = r[b].as_f64().unwrap_or_else(|| panic!("no {b} time: {r}"));
            assert!(ms.is_finite() && ms >= 0.0, "{r}");
        }
        assert!(r["case"]["per_step"].as_u64().unwrap() >= 1, "{r}");
    }
    let (code, _, err) = run(npe().args("bench ops --depth 9".split(' ')));
    assert_ne!(code, 0);
    assert!(err.contains("6n + 2"), "{err}");
}
