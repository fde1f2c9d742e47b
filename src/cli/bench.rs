//! `npe bench`: measurements printed as tables (never timed assertions in tests).
//!
//! - `npe bench train`: training throughput of ResNet-N + M PEMs on one fixed random batch, for
//!   each backend (and optionally PyTorch through `scripts/bench_pytorch.py`), each measurement in
//!   its own child process (so peak RSS is per configuration), configurations alternating round
//!   by round so that machine noise hits them alike.
//! - `npe bench data`: decode + augmentation throughput of the loader, images/s on one core.

use super::EXIT_FAILURE;
use crate::{BackendChoice, Extensions};
use npe_core::backend::{BuildContext, Device};
use npe_core::batch::HostBatch;
use npe_core::rng::Rng;
use npe_core::tensor::Precision;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Training throughput (img/s) and peak memory of the backends, side by side.
    Train(TrainBench),
    /// Decode + augmentation throughput of the data loader (img/s per core).
    Data(DataBench),
    /// Batch inference throughput (img/s) of npe predict's path, PyTorch eval mode and ONNX
    /// Runtime on npe's export, side by side.
    Predict(super::bench_predict::PredictBench),
}

#[derive(clap::Args, Debug, Clone)]
struct TrainBench {
    /// Backends to measure (default: all compiled in).
    #[arg(long, value_enum, value_delimiter = ',')]
    backends: Vec<BackendChoice>,
    /// PEM counts to measure, e.g. `0,1,3` (0 = plain CE).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pems: Vec<usize>,
    /// ResNet depth.
    #[arg(long, default_value_t = 32)]
    depth: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Timed steps per measurement.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Rounds (each round measures every configuration once, order rotating).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// CPU threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Device: `cpu`, `cuda:N` (a build with `--features cuda`) or `wgpu` (burn).
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Precisions to measure, e.g. `fp32,bf16` (`train.precision`; PyTorch: autocast).
    #[arg(long, value_delimiter = ',', default_value = "fp32")]
    precision: Vec<Precision>,
    /// Memory layouts to measure: `false` (plain), `true` (channels-last), or `false,true`.
    #[arg(long, value_delimiter = ',', default_value = "false", action = clap::ArgAction::Set)]
    channels_last: Vec<bool>,
    /// Measure this pipeline's model instead of ResNet-N (random inputs and labels of its shapes;
    /// `--pems` then does not apply).
    #[arg(long, value_name = "FILE")]
    pipeline: Option<PathBuf>,
    /// A Python with torch 2.13.0 to run scripts/bench_pytorch.py in the same rotation.
    #[arg(long, value_name = "PYTHON")]
    pytorch: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Internal: run one measurement (`backend:pems`) and print it as JSON.
    #[arg(long, hide = true)]
    child: Option<String>,
}

#[derive(clap::Args, Debug)]
struct DataBench {
    /// An image folder of CIFAR-sized images (`train/<class>/*.jpg`) for the JPEG measurement.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Images per measurement.
    #[arg(long, default_value_t = 20000)]
    images: usize,
}

pub(crate) fn run(args: BenchArgs, ext: &Extensions) -> ExitCode {
    match args.what {
        What::Train(t) if t.child.is_some() => child(&t, ext),
        What::Train(t) => parent(t),
        What::Data(d) => data(d),
        What::Predict(p) => super::bench_predict::run(p, ext),
    }
}

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

/// Peak resident memory of this process, MB (Linux `VmHWM`).
pub(super) fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn child(t: &TrainBench, ext: &Extensions) -> ExitCode {
    let spec = t.child.clone().unwrap_or_default();
    let (b, m) = spec.split_once(':').unwrap_or((&spec, "1"));
    let choice = match b {
        "burn" => BackendChoice::Burn,
        _ => BackendChoice::Tch,
    };
    if let Err(e) = choice.ensure_compiled() {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let pems: usize = m.parse().unwrap_or(1);
    let loaded = match &t.pipeline {
        Some(p) => {
            let sets = vec![
                format!("train.batch_size={}", t.batch),
                format!("train.threads={}", t.threads),
                format!("train.precision={}", t.precision[0]),
                format!("train.channels_last={}", t.channels_last[0]),
            ];
            match npe_core::spec::load_file(p, &npe_core::spec::Overrides::with_sets(sets)) {
                Ok(l) => l,
                Err(d) => {
                    super::report(&d);
                    return ExitCode::from(super::EXIT_INVALID);
                }
            }
        }
        None => {
            let text = pipeline(t.depth, pems, t.batch, t.threads, t.precision[0], t.channels_last[0]);
            let src = npe_core::source::SourceText::from_string("bench.yaml", text);
            npe_core::spec::load_source(src, &Default::default()).expect("valid bench pipeline")
        }
    };
    let ir = match npe_core::ir::build(&loaded, &ext.registry) {
        Ok((ir, _)) => ir,
        Err(d) => {
            super::report(&d);
            return ExitCode::from(super::EXIT_INVALID);
        }
    };
    let params = npe_core::model::layout(&ir, &ext.registry);
    let ctx = BuildContext {
        device: t.device,
        threads: t.threads,
        initial: npe_core::model::initial_values(&params, 0),
        params,
        optimizer: ir.train.optimizer.clone(),
        frozen: Default::default(),
        class_prior: vec![1.0 / ir.num_classes() as f64; ir.num_classes()],
        ignore_index: 255,
    };
    let backend = super::session::backend(choice);
    let mut exec = match npe_core::exec::build(backend.as_ref(), &ir, &ctx) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let n = t.batch;
    let mut r = Rng::new(0);
    let [c, h, w] =
        [ir.data.image.channels, ir.data.image.spatial.map_or(1, |s| s[0]), ir.data.image.spatial.map_or(1, |s| s[1])];
    let dense = ir.data.is_dense();
    let classes = ir.num_classes() as u64;
    let batch = HostBatch {
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
    };
    let mut last = 0.0;
    let mut t0 = Instant::now();
    for step in 0..t.warmup + t.steps {
        if step == t.warmup {
            t0 = Instant::now();
        }
        match exec.train_step(&batch, 0.1) {
            Ok(l) => last = l.total,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    let out = serde_json::json!({
        "img_s": (t.steps * n) as f64 / dt, "pixels_s": (t.steps * n * h * w) as f64 / dt, "step_s": dt / t.steps as f64, "peak_rss_mb": peak_rss_mb(),
        "describe": exec.describe(), "loss": last,
    });
    println!("{out}");
    ExitCode::SUCCESS
}

#[derive(Clone)]
struct Config {
    label: String,
    backend: String,
    pems: usize,
    precision: Precision,
    channels_last: bool,
}

fn measure(c: &Config, t: &TrainBench) -> Result<serde_json::Value, String> {
    let mut cmd = if c.backend == "pytorch" {
        let py = t.pytorch.clone().expect("pytorch configured");
        let mut cmd = Command::new(py);
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_pytorch.py");
        cmd.arg(script).args([t.threads, t.steps, t.warmup, t.batch, t.depth, c.pems].map(|v| v.to_string()));
        cmd.args([t.device.to_string(), c.precision.to_string(), (c.channels_last as u8).to_string()]);
        cmd
    } else {
        let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        cmd.args(["bench", "train", "--child", &format!("{}:{}", c.backend, c.pems)]);
        cmd.args(["--depth", &t.depth.to_string(), "--batch", &t.batch.to_string(), "--steps", &t.steps.to_string()]);
        cmd.args(["--warmup", &t.warmup.to_string(), "--threads", &t.threads.to_string()]);
        cmd.args(["--device", &t.device.to_string()]);
        cmd.args(["--precision", &c.precision.to_string(), "--channels-last", &c.channels_last.to_string()]);
        if let Some(p) = &t.pipeline {
            cmd.arg("--pipeline").arg(p);
        }
        cmd
    };
    let out = cmd.output().map_err(|e| format!("{}: {e}", c.label))?;
    if !out.status.success() {
        return Err(format!("{}: {}", c.label, String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().rev().find(|l| l.starts_with('{')).ok_or_else(|| format!("{}: no result in {text}", c.label))?;
    serde_json::from_str(line).map_err(|e| format!("{}: {e}", c.label))
}

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

fn parent(t: TrainBench) -> ExitCode {
    let mut backends: Vec<String> = if t.backends.is_empty() {
        [BackendChoice::Burn, BackendChoice::Tch].into_iter().filter(|b| b.compiled()).map(|b| b.to_string()).collect()
    } else {
        t.backends.iter().map(|b| b.to_string()).collect()
    };
    for b in &t.backends {
        if let Err(e) = b.ensure_compiled() {
            eprintln!("error: {e}");
            return ExitCode::from(super::EXIT_INVALID);
        }
    }
    if t.pytorch.is_some() && t.pipeline.is_none() {
        backends.insert(0, "pytorch".into());
    }
    let pems_list = if t.pipeline.is_some() { vec![0] } else { t.pems.clone() };
    let variants: Vec<(Precision, bool)> =
        t.precision.iter().flat_map(|&p| t.channels_last.iter().map(move |&cl| (p, cl))).collect();
    let mut configs: Vec<Config> = vec![];
    for b in &backends {
        for &m in &pems_list {
            for &(precision, channels_last) in &variants {
                let mut label = if t.pipeline.is_some() { b.clone() } else { format!("{b} M={m}") };
                if variants.len() > 1 || precision != Precision::Fp32 || channels_last {
                    label += &format!(" {precision}{}", if channels_last { " CL" } else { "" });
                }
                configs.push(Config { label, backend: b.clone(), pems: m, precision, channels_last });
            }
        }
    }
    let mut results: Vec<Vec<serde_json::Value>> = vec![vec![]; configs.len()];
    let model = match &t.pipeline {
        Some(p) => format!("{}", p.display()),
        None => format!("ResNet-{} + M PEMs on 3×32×32", t.depth),
    };
    eprintln!(
        "{model} training, batch {}, {} threads: {} configurations × {} rounds ({} steps after {} warm-up each)",
        t.batch,
        t.threads,
        configs.len(),
        t.rounds,
        t.steps,
        t.warmup
    );
    for round in 0..t.rounds {
        for k in 0..configs.len() {
            let i = (k + round) % configs.len();
            match measure(&configs[i], &t) {
                Ok(v) => {
                    eprintln!(
                        "  round {} {:<14} {:>8.1} img/s",
                        round + 1,
                        configs[i].label,
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
    let rows: Vec<serde_json::Value> = configs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ips = stat(i, "img_s");
            let rss = median(stat(i, "peak_rss_mb"));
            let pt = configs.iter().position(|d| d.backend == "pytorch" && d.pems == c.pems).map(|j| (median(stat(j, "img_s")), median(stat(j, "peak_rss_mb"))));
            serde_json::json!({
                "config": c.label, "backend": c.backend, "pems": c.pems,
                "describe": results[i].first().map(|v| v["describe"].clone()).unwrap_or_default(),
                "pixels_s_median": median(stat(i, "pixels_s")),
                "img_s_median": median(ips.clone()), "img_s_min": ips.iter().copied().fold(f64::INFINITY, f64::min),
                "img_s_max": ips.iter().copied().fold(0.0, f64::max), "peak_rss_mb": rss,
                "speed_vs_pytorch": pt.map(|(p, _)| median(ips.clone()) / p), "rss_vs_pytorch": pt.map(|(_, r)| rss / r),
            })
        })
        .collect();
    if t.json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!(
        "\n{model}: training throughput at batch {}, {} threads; median of {} alternating rounds",
        t.batch, t.threads, t.rounds
    );
    println!(
        "{:<14} {:>10} {:>17} {:>12} {:>10} {:>12} {:>12}  {}",
        "config", "img/s", "[min – max]", "Mpixel/s", "peak MB", "× PyTorch", "RSS × PyT", "what"
    );
    for r in &rows {
        let f = |k: &str| r[k].as_f64().map_or("-".to_string(), |v| format!("{v:.2}"));
        println!(
            "{:<14} {:>10.1} {:>17} {:>12.3} {:>10.0} {:>12} {:>12}  {}",
            r["config"].as_str().unwrap_or(""),
            r["img_s_median"].as_f64().unwrap_or(0.0),
            format!("[{:.1} – {:.1}]", r["img_s_min"].as_f64().unwrap_or(0.0), r["img_s_max"].as_f64().unwrap_or(0.0)),
            r["pixels_s_median"].as_f64().unwrap_or(0.0) / 1e6,
            r["peak_rss_mb"].as_f64().unwrap_or(0.0),
            f("speed_vs_pytorch"),
            f("rss_vs_pytorch"),
            r["describe"].as_str().unwrap_or("")
        );
    }
    if t.pipeline.is_none() && t.pems.contains(&0) {
        for b in &backends {
            let base = rows
                .iter()
                .find(|r| r["backend"] == b.as_str() && r["pems"] == 0)
                .and_then(|r| r["img_s_median"].as_f64());
            for r in rows.iter().filter(|r| r["backend"] == b.as_str() && r["pems"].as_u64().unwrap_or(0) > 0) {
                if let (Some(b0), Some(v)) = (base, r["img_s_median"].as_f64()) {
                    println!(
                        "PEM overhead {}: {:+.1}% time per step",
                        r["config"].as_str().unwrap_or(""),
                        100.0 * (b0 / v - 1.0)
                    );
                }
            }
        }
    }
    ExitCode::SUCCESS
}

fn data(d: DataBench) -> ExitCode {
    use npe_core::data::{DenseImages, Loader, LoaderOptions, Pixels, Split, augment::Transform};
    use npe_core::spec::{AugmentSpec, CropSpec};
    let aug = AugmentSpec { random_crop: Some(CropSpec { size: 32, padding: 4 }), hflip: true, ..Default::default() };
    let transform = || Transform::new(&aug, true, &[0.4914, 0.4822, 0.4465], &[0.2023, 0.1994, 0.2010], [32, 32], 255);
    let opts =
        LoaderOptions { batch_size: 128, shuffle: true, drop_last: false, seed: 0, workers: 0, prefetch: 0, stream: 1 };
    let time_loader = |loader: &Loader| -> f64 {
        let t0 = Instant::now();
        let mut n = 0usize;
        for b in loader.iter(0, 0) {
            n += b.map(|b| b.len()).unwrap_or(0);
        }
        n as f64 / t0.elapsed().as_secs_f64()
    };
    println!(
        "data loader throughput, one thread (images/s per core), CIFAR-sized 32×32×3, random crop 32 pad 4 + flip + normalise:"
    );
    // Raw pixels in memory (what the CIFAR binary/python readers produce).
    let mut r = Rng::new(1);
    let raw: Vec<u8> = (0..d.images * 3072).map(|_| r.below(256) as u8).collect();
    let split = Split::new(
        Pixels::Dense(DenseImages { h: 32, w: 32, c: 3, data: std::sync::Arc::new(raw) }),
        vec![0; d.images],
        None,
    );
    let ips =
        (0..3).map(|_| time_loader(&Loader::new(split.clone(), transform(), 3, opts.clone()))).fold(0.0, f64::max);
    println!("  {:<40} {:>10.0} img/s", "decoded pixels (CIFAR binary/python)", ips);
    // JPEG files decoded per batch.
    let Some(root) = d.root else {
        println!("  (pass --root DIR, an image folder of 32×32 JPEGs, to measure JPEG decoding too)");
        return ExitCode::SUCCESS;
    };
    let classes = match npe_core::data::folder::class_dirs(&root.join("train")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let files = match npe_core::data::folder::read_folder_split(&root, "train", &classes) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let n = files.paths.len().min(d.images);
    let mut pick = Rng::new(2).permutation(files.paths.len());
    pick.truncate(n);
    let paths: Vec<PathBuf> = pick.iter().map(|&i| files.paths[i].clone()).collect();
    let split = Split::new(Pixels::Files { paths: std::sync::Arc::new(paths), channels: 3 }, vec![0; n], None);
    // Warm the page cache once, then measure.
    let _ = time_loader(&Loader::new(split.clone(), transform(), 3, opts.clone()));
    let ips =
        (0..2).map(|_| time_loader(&Loader::new(split.clone(), transform(), 3, opts.clone()))).fold(0.0, f64::max);
    println!("  {:<40} {:>10.0} img/s", format!("JPEG files ({n} from {})", root.display()), ips);
    ExitCode::SUCCESS
}
