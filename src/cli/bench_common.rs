//! What `npe bench train` and `npe bench predict` share: the benchmarked ResNet pipeline, a
//! child's typed measurement, the strict `--child` spec, the rotation of configurations over
//! rounds, and the summary row of each configuration.

use crate::BackendChoice;
use npe_core::batch::HostBatch;
use npe_core::error::Result;
use npe_core::ir::Ir;
use npe_core::rng::Rng;
use npe_core::tensor::Precision;
use serde::{Deserialize, Serialize};
use std::process::Command;

/// The benchmarked pipeline: CIFAR ResNet-`depth`, a linear head, CE and `pems` PEMs.
pub(super) fn pipeline(
    depth: usize,
    pems: usize,
    batch: usize,
    threads: usize,
    precision: Precision,
    cl: bool,
) -> String {
    let mut nodes = format!(
        "  features: {{kind: resnet_cifar, input: data, depth: {depth}}}\n  logits: {{kind: linear, input: features}}\n  ce: {{kind: cross_entropy, input: logits}}\n"
    );
    if pems > 0 {
        nodes += &format!(
            "  prior: {{kind: pem, input: features, count: {pems}}}\n  pem_loss: {{kind: one_way_logistic, input: prior}}\n"
        );
    }
    format!(
        "name: bench\nseed: 0\ndata: {{source: cifar10}}\nnodes:\n{nodes}train: {{batch_size: {batch}, threads: {threads}, precision: {precision}, channels_last: {cl}, optimizer: {{lr: 0.1, momentum: 0.9, weight_decay: 2.0e-4}}}}\n"
    )
}

/// One fixed random batch of `n` inputs of `ir`'s shape (labels cycle through the classes, or
/// are random per pixel for segmentation).
pub(super) fn random_batch(ir: &Ir, n: usize) -> HostBatch {
    let mut r = Rng::new(0);
    let spatial = ir.data.image.spatial.unwrap_or([1, 1]);
    let [c, h, w] = [ir.data.image.channels, spatial[0], spatial[1]];
    let dense = ir.data.is_dense();
    let classes = ir.num_classes() as u64;
    HostBatch {
        images: (0..n * c * h * w).map(|_| r.normal() as f32).collect(),
        shape: [n, c, h, w],
        labels: if dense {
            (0..n * h * w).map(|_| r.below(classes) as i64).collect()
        } else {
            (0..n as i64).map(|i| i % classes as i64).collect()
        },
        dense,
        region: None,
        indices: (0..n as u32).collect(),
        global_len: 0,
    }
}

/// Peak resident memory of this process, MB (Linux `VmHWM`).
pub(super) fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// What one measurement (an npe child or a Python script) prints as its last JSON line.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Measurement {
    /// Images per second.
    pub img_s: f64,
    /// Pixels per second (training; 0 where not measured).
    #[serde(default)]
    pub pixels_s: f64,
    /// Seconds per step (training).
    #[serde(default)]
    pub step_s: f64,
    /// Peak resident memory, MB.
    #[serde(default)]
    pub peak_rss_mb: f64,
    /// What ran (backend, device, threads, precision).
    #[serde(default)]
    pub describe: String,
    /// The last step's loss (training).
    #[serde(default)]
    pub loss: f64,
}

/// Run a measurement's command and read its result: the last line of its output that is JSON.
pub(super) fn run_child(label: &str, mut cmd: Command) -> Result<Measurement> {
    let out = cmd.output().map_err(|e| format!("{label}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{label}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().rev().find(|l| l.starts_with('{')).ok_or_else(|| format!("{label}: no result in {text}"))?;
    Ok(serde_json::from_str(line).map_err(|e| format!("{label}: {e} in {line}"))?)
}

/// A child's answer to its parent: the measurement as one JSON line, or the error (exit 1).
pub(super) fn report_child(result: Result<Measurement>) -> std::process::ExitCode {
    match result {
        Ok(m) => {
            println!("{}", serde_json::to_string(&m).expect("a measurement serialises"));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

/// The hidden `--child BACKEND[:PEMS]` of a benchmark: a compiled backend, and a PEM count
/// where `pems` allows one; anything else is an error, not a guess.
pub(super) fn parse_child(spec: &str, pems: bool) -> Result<(BackendChoice, usize)> {
    let (b, m) = match spec.split_once(':') {
        Some((b, m)) if pems => (b, Some(m)),
        Some(_) => return Err(format!("--child {spec}: expected a backend (burn or tch)").into()),
        None => (spec, None),
    };
    let choice = match b {
        "burn" => BackendChoice::Burn,
        "tch" => BackendChoice::Tch,
        other => return Err(format!("--child {spec}: unknown backend `{other}` (burn or tch)").into()),
    };
    choice.ensure_compiled()?;
    let m = match m {
        Some(m) => m.parse().map_err(|_| format!("--child {spec}: `{m}` is not a PEM count"))?,
        None => 1,
    };
    Ok((choice, m))
}

/// Measure every configuration `rounds` times, the order rotating by one each round so that
/// machine noise hits them alike; the measurements of each configuration. Progress on stderr.
pub(super) fn rotate(
    labels: &[String],
    rounds: usize,
    mut measure: impl FnMut(usize) -> Result<Measurement>,
) -> Result<Vec<Vec<Measurement>>> {
    let mut results = vec![vec![]; labels.len()];
    for round in 0..rounds {
        for k in 0..labels.len() {
            let i = (k + round) % labels.len();
            let m = measure(i)?;
            eprintln!("  round {} {:<14} {:>8.1} img/s", round + 1, labels[i], m.img_s);
            results[i].push(m);
        }
    }
    Ok(results)
}

/// The median (NaN for none).
pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// One configuration's rounds, summarised: a table row (`--json` prints these).
#[derive(Clone, Debug, Serialize)]
pub(super) struct Row {
    /// The configuration's label.
    pub config: String,
    /// Its backend (`burn`, `tch`, `pytorch`, `onnxruntime`).
    pub backend: String,
    /// PEMs (training benchmarks).
    pub pems: usize,
    /// What ran, from the first round.
    pub describe: String,
    /// Images per second: median, min and max over rounds.
    pub img_s_median: f64,
    /// Slowest round.
    pub img_s_min: f64,
    /// Fastest round.
    pub img_s_max: f64,
    /// Median pixels per second.
    pub pixels_s_median: f64,
    /// Median peak RSS, MB.
    pub peak_rss_mb: f64,
    /// Median img/s over PyTorch's (same PEMs), where PyTorch ran.
    pub speed_vs_pytorch: Option<f64>,
    /// Median peak RSS over PyTorch's.
    pub rss_vs_pytorch: Option<f64>,
}

impl Row {
    /// The row of `rounds`, against `pytorch`'s rounds where given.
    pub fn of(
        config: &str,
        backend: &str,
        pems: usize,
        rounds: &[Measurement],
        pytorch: Option<&[Measurement]>,
    ) -> Row {
        let pick = |ms: &[Measurement], f: fn(&Measurement) -> f64| median(ms.iter().map(f).collect());
        let ips: Vec<f64> = rounds.iter().map(|m| m.img_s).collect();
        let (img_s, rss) = (median(ips.clone()), pick(rounds, |m| m.peak_rss_mb));
        Row {
            config: config.into(),
            backend: backend.into(),
            pems,
            describe: rounds.first().map(|m| m.describe.clone()).unwrap_or_default(),
            img_s_median: img_s,
            img_s_min: ips.iter().copied().fold(f64::INFINITY, f64::min),
            img_s_max: ips.iter().copied().fold(0.0, f64::max),
            pixels_s_median: pick(rounds, |m| m.pixels_s),
            peak_rss_mb: rss,
            speed_vs_pytorch: pytorch.map(|p| img_s / pick(p, |m| m.img_s)),
            rss_vs_pytorch: pytorch.map(|p| rss / pick(p, |m| m.peak_rss_mb)),
        }
    }
}

/// A ratio to two decimals, or `-`.
pub(super) fn ratio(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_specs_are_parsed_strictly() {
        assert!(parse_child("gpu:1", true).unwrap_err().to_string().contains("unknown backend `gpu`"));
        assert!(
            parse_child("burn:x", true)
                .is_err_and(|e| e.to_string().contains("not a PEM count") || e.to_string().contains("without"))
        );
        assert!(parse_child("burn:1", false).is_err());
        if BackendChoice::Burn.compiled() {
            assert_eq!(parse_child("burn:3", true).unwrap(), (BackendChoice::Burn, 3));
            assert_eq!(parse_child("burn", false).unwrap(), (BackendChoice::Burn, 1));
        }
    }

    #[test]
    fn a_row_summarises_its_rounds_against_pytorch() {
        let m = |img_s: f64, rss: f64| Measurement { img_s, peak_rss_mb: rss, ..Default::default() };
        let rounds = [m(10.0, 100.0), m(30.0, 120.0), m(20.0, 110.0)];
        let pt = [m(40.0, 200.0)];
        let r = Row::of("tch M=1", "tch", 1, &rounds, Some(&pt));
        assert_eq!((r.img_s_median, r.img_s_min, r.img_s_max, r.peak_rss_mb), (20.0, 10.0, 30.0, 110.0));
        assert_eq!((r.speed_vs_pytorch, r.rss_vs_pytorch), (Some(0.5), Some(0.55)));
        assert_eq!(Row::of("burn", "burn", 0, &rounds, None).speed_vs_pytorch, None);
    }
}
