//! `npe bench predict`: batch inference throughput of ResNet-N + 1 PEM with NPE-LA on one fixed
//! random batch, side by side in one rotation: npe's inference path (what `npe predict` runs:
//! upload, evaluation-mode forward, NPE-LA, download) on each backend, PyTorch in eval mode
//! under `torch.inference_mode`, and ONNX Runtime on npe's ONNX export of the same model
//! (`scripts/bench_infer.py`). Each measurement is its own child process.

use super::EXIT_FAILURE;
use super::bench::{median, peak_rss_mb, pipeline};
use crate::{BackendChoice, Extensions};
use npe_core::backend::{BuildContext, Device, Request};
use npe_core::batch::HostBatch;
use npe_core::rng::Rng;
use npe_core::tensor::Precision;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct PredictBench {
    /// npe backends to measure (default: all compiled in).
    #[arg(long, value_enum, value_delimiter = ',')]
    backends: Vec<BackendChoice>,
    /// ResNet depth.
    #[arg(long, default_value_t = 32)]
    depth: usize,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Timed batches per measurement.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed warm-up batches.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Rounds (each measures every configuration once, order rotating).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// CPU threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// A Python with torch 2.13.0 and onnxruntime: adds PyTorch eval mode and ONNX Runtime.
    #[arg(long, value_name = "PYTHON")]
    python: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Internal: run one npe measurement (`burn` or `tch`) and print it as JSON.
    #[arg(long, hide = true)]
    child: Option<String>,
}

/// The benchmarked pipeline: ResNet-N, a linear head, 1 PEM and NPE-LA.
fn bench_ir(t: &PredictBench, ext: &Extensions) -> Result<npe_core::ir::Ir, String> {
    let text = pipeline(t.depth, 1, t.batch, t.threads, Precision::Fp32, false)
        .replace("nodes:\n", "nodes:\n  npe: {kind: npe_la, logits: logits, pem: prior}\n");
    let src = npe_core::source::SourceText::from_string("bench.yaml", text);
    let loaded = npe_core::spec::load_source(src, &Default::default()).map_err(|d| d.to_string())?;
    npe_core::ir::build(&loaded, &ext.registry).map(|(ir, _)| ir).map_err(|d| d.to_string())
}

fn context(ir: &npe_core::ir::Ir, threads: usize, ext: &Extensions) -> BuildContext {
    let params = npe_core::model::layout(ir, &ext.registry);
    BuildContext {
        device: Device::Cpu,
        threads,
        initial: npe_core::model::initial_values(&params, 0),
        params,
        optimizer: ir.train.optimizer.clone(),
        frozen: Default::default(),
        class_prior: vec![1.0 / ir.num_classes() as f64; ir.num_classes()],
        ignore_index: ir.data_spec.ignore_index as i64,
    }
}

fn child(t: &PredictBench, ext: &Extensions) -> Result<serde_json::Value, String> {
    let choice = match t.child.as_deref() {
        Some("burn") => BackendChoice::Burn,
        Some("tch") => BackendChoice::Tch,
        other => return Err(format!("unknown bench child {other:?}: burn or tch")),
    };
    choice.ensure_compiled().map_err(|e| e.to_string())?;
    let ir = bench_ir(t, ext)?;
    let backend = super::session::backend(choice);
    let mut exec =
        npe_core::exec::build(backend.as_ref(), &ir, &context(&ir, t.threads, ext)).map_err(|e| e.to_string())?;
    let n = t.batch;
    let mut r = Rng::new(0);
    let batch = HostBatch {
        images: (0..n * 3 * 32 * 32).map(|_| r.normal() as f32).collect(),
        shape: [n, 3, 32, 32],
        labels: vec![0; n],
        dense: false,
        indices: (0..n as u32).collect(),
        global_len: 0,
        region: None,
    };
    let requests = [Request::Output("npe".into())];
    let mut t0 = Instant::now();
    for step in 0..t.warmup + t.steps {
        if step == t.warmup {
            t0 = Instant::now();
        }
        exec.infer(&batch, &requests).map_err(|e| e.to_string())?;
    }
    let dt = t0.elapsed().as_secs_f64();
    Ok(
        serde_json::json!({"img_s": (t.steps * n) as f64 / dt, "peak_rss_mb": peak_rss_mb(), "describe": format!("npe predict path, {}", exec.describe())}),
    )
}

/// npe's ONNX export of the benchmarked model (its random initial weights) into `path`.
fn export(t: &PredictBench, ext: &Extensions, path: &Path) -> Result<(), String> {
    let ir = bench_ir(t, ext)?;
    let recorder = npe_core::export::record::Recorder::default();
    let backend = npe_core::export::record::RecordingBackend(recorder.clone());
    let exec = npe_core::exec::build(&backend, &ir, &context(&ir, t.threads, ext)).map_err(|e| e.to_string())?;
    let bytes =
        npe_core::export::record(&ir, exec, &recorder, &["npe".to_string()], None).map_err(|e| e.to_string())?;
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn measure(label: &str, t: &PredictBench, onnx: &Path) -> Result<serde_json::Value, String> {
    let mut cmd = match label {
        "pytorch" | "onnxruntime" => {
            let mut c = Command::new(t.python.clone().expect("python configured"));
            c.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_infer.py"));
            c.args([label.to_string(), onnx.display().to_string()]);
            c.args([t.threads, t.steps, t.warmup, t.batch, t.depth].map(|v| v.to_string()));
            c
        }
        backend => {
            let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            c.args(["bench", "predict", "--child", backend]);
            c.args(["--depth", &t.depth.to_string(), "--batch", &t.batch.to_string(), "--steps", &t.steps.to_string()]);
            c.args(["--warmup", &t.warmup.to_string(), "--threads", &t.threads.to_string()]);
            c
        }
    };
    let out = cmd.output().map_err(|e| format!("{label}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{label}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().rev().find(|l| l.starts_with('{')).ok_or_else(|| format!("{label}: no result in {text}"))?;
    serde_json::from_str(line).map_err(|e| format!("{label}: {e}"))
}

pub(crate) fn run(t: PredictBench, ext: &Extensions) -> ExitCode {
    if t.child.is_some() {
        return match child(&t, ext) {
            Ok(v) => {
                println!("{v}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_FAILURE)
            }
        };
    }
    let mut configs: Vec<String> = if t.backends.is_empty() {
        [BackendChoice::Burn, BackendChoice::Tch].into_iter().filter(|b| b.compiled()).map(|b| b.to_string()).collect()
    } else {
        t.backends.iter().map(|b| b.to_string()).collect()
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: a temporary folder: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let onnx = dir.path().join("bench.onnx");
    if t.python.is_some() {
        if let Err(e) = export(&t, ext, &onnx) {
            eprintln!("error: exporting the benchmarked model: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
        configs.splice(0..0, ["pytorch".to_string(), "onnxruntime".to_string()]);
    }
    eprintln!(
        "ResNet-{} + 1 PEM + NPE-LA on 3×32×32, batch inference at batch {}, {} threads: {} configurations × {} rounds ({} batches after {} warm-up each)",
        t.depth,
        t.batch,
        t.threads,
        configs.len(),
        t.rounds,
        t.steps,
        t.warmup
    );
    let mut results: Vec<Vec<serde_json::Value>> = vec![vec![]; configs.len()];
    for round in 0..t.rounds {
        for k in 0..configs.len() {
            let i = (k + round) % configs.len();
            match measure(&configs[i], &t, &onnx) {
                Ok(v) => {
                    eprintln!(
                        "  round {} {:<12} {:>8.1} img/s",
                        round + 1,
                        configs[i],
                        v["img_s"].as_f64().unwrap_or(0.0)
                    );
                    results[i].push(v);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_FAILURE);
                }
            }
        }
    }
    let stat = |i: usize, k: &str| -> Vec<f64> { results[i].iter().filter_map(|v| v[k].as_f64()).collect() };
    let pytorch = configs.iter().position(|c| c == "pytorch").map(|j| median(stat(j, "img_s")));
    let rows: Vec<serde_json::Value> = (0..configs.len())
        .map(|i| {
            let ips = stat(i, "img_s");
            serde_json::json!({
                "config": configs[i], "describe": results[i].first().map(|v| v["describe"].clone()).unwrap_or_default(),
                "img_s_median": median(ips.clone()), "img_s_min": ips.iter().copied().fold(f64::INFINITY, f64::min),
                "img_s_max": ips.iter().copied().fold(0.0, f64::max), "peak_rss_mb": median(stat(i, "peak_rss_mb")),
                "speed_vs_pytorch": pytorch.map(|p| median(ips.clone()) / p),
            })
        })
        .collect();
    if t.json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!(
        "\nResNet-{} + 1 PEM + NPE-LA: batch inference at batch {}, {} threads; median of {} alternating rounds",
        t.depth, t.batch, t.threads, t.rounds
    );
    println!(
        "{:<12} {:>10} {:>17} {:>10} {:>11}  {}",
        "config", "img/s", "[min – max]", "peak MB", "× PyTorch", "what"
    );
    for r in &rows {
        println!(
            "{:<12} {:>10.1} {:>17} {:>10.0} {:>11}  {}",
            r["config"].as_str().unwrap_or(""),
            r["img_s_median"].as_f64().unwrap_or(0.0),
            format!("[{:.1} – {:.1}]", r["img_s_min"].as_f64().unwrap_or(0.0), r["img_s_max"].as_f64().unwrap_or(0.0)),
            r["peak_rss_mb"].as_f64().unwrap_or(0.0),
            r["speed_vs_pytorch"].as_f64().map_or("-".into(), |v| format!("{v:.2}")),
            r["describe"].as_str().unwrap_or("")
        );
    }
    ExitCode::SUCCESS
}
