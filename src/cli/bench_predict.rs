//! `npe bench predict`: batch inference throughput of ResNet-N + 1 PEM with NPE-LA on one fixed
//! random batch, side by side in one rotation: npe's inference path (what `npe predict` runs:
//! upload, evaluation-mode forward, NPE-LA, download) on each backend, PyTorch in eval mode
//! under `torch.inference_mode`, and ONNX Runtime on npe's ONNX export of the same model
//! (`scripts/bench_infer.py`). Each measurement is its own child process.

use super::EXIT_FAILURE;
use super::bench_common::{
    Measurement, Row, parse_child, peak_rss_mb, pipeline, random_batch, ratio, report_child, rotate, run_child,
};
use crate::{BackendChoice, Extensions};
use npe_core::backend::{BuildContext, Device, Request};
use npe_core::error::{IoContext, Result};
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
fn bench_ir(t: &PredictBench, ext: &Extensions) -> Result<npe_core::ir::Ir> {
    let text = pipeline(t.depth, 1, t.batch, t.threads, Precision::Fp32, false)
        .replace("nodes:\n", "nodes:\n  npe: {kind: npe_la, logits: logits, pem: prior}\n");
    let src = npe_core::source::SourceText::from_string("bench.yaml", text);
    let loaded = npe_core::spec::load_source(src, &Default::default()).map_err(|d| d.to_string())?;
    Ok(npe_core::ir::build(&loaded, &ext.registry).map(|(ir, _)| ir).map_err(|d| d.to_string())?)
}

/// What the executor is built with: training's context on the CPU, with a uniform prior.
fn context(ir: &npe_core::ir::Ir, ext: &Extensions) -> BuildContext {
    let uniform = vec![1.0 / ir.num_classes() as f64; ir.num_classes()];
    npe_core::model::build_context(ir, &ext.registry, Device::Cpu, uniform)
}

/// Child: `warmup + steps` inference batches of npe predict's path; the timed batches' rate.
fn child(t: &PredictBench, spec: &str, ext: &Extensions) -> Result<Measurement> {
    let (choice, _) = parse_child(spec, false)?;
    let ir = bench_ir(t, ext)?;
    let backend = super::session::backend(choice);
    let mut exec = npe_core::exec::build(backend.as_ref(), &ir, &context(&ir, ext)).map_err(|e| e.to_string())?;
    let n = t.batch;
    let batch = random_batch(&ir, n);
    let requests = [Request::Output("npe".into())];
    let mut t0 = Instant::now();
    for step in 0..t.warmup + t.steps {
        if step == t.warmup {
            t0 = Instant::now();
        }
        exec.infer(&batch, &requests).map_err(|e| e.to_string())?;
    }
    let dt = t0.elapsed().as_secs_f64();
    Ok(Measurement {
        img_s: (t.steps * n) as f64 / dt,
        peak_rss_mb: peak_rss_mb(),
        describe: format!("npe predict path, {}", exec.describe()),
        ..Default::default()
    })
}

/// npe's ONNX export of the benchmarked model (its random initial weights) into `path`.
fn export(t: &PredictBench, ext: &Extensions, path: &Path) -> Result<()> {
    let ir = bench_ir(t, ext)?;
    let recorder = npe_core::export::record::Recorder::default();
    let backend = npe_core::export::record::RecordingBackend(recorder.clone());
    let exec = npe_core::exec::build(&backend, &ir, &context(&ir, ext)).map_err(|e| e.to_string())?;
    let bytes =
        npe_core::export::record(&ir, exec, &recorder, &["npe".to_string()], None).map_err(|e| e.to_string())?;
    Ok(std::fs::write(path, bytes).at(path)?)
}

fn measure(label: &str, t: &PredictBench, onnx: &Path) -> Result<Measurement> {
    let cmd = match label {
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
    run_child(label, cmd)
}

pub(crate) fn run(t: PredictBench, ext: &Extensions) -> ExitCode {
    if let Some(spec) = &t.child {
        return report_child(child(&t, spec, ext));
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
    let results = match rotate(&configs, t.rounds, |i| measure(&configs[i], &t, &onnx)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let pytorch = configs.iter().position(|c| c == "pytorch").map(|j| &results[j][..]);
    let rows: Vec<Row> = configs.iter().zip(&results).map(|(c, ms)| Row::of(c, c, 1, ms, pytorch)).collect();
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
            r.config,
            r.img_s_median,
            format!("[{:.1} – {:.1}]", r.img_s_min, r.img_s_max),
            r.peak_rss_mb,
            ratio(r.speed_vs_pytorch),
            r.describe
        );
    }
    ExitCode::SUCCESS
}
