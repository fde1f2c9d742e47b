//! `npe bench`: measurements printed as tables (never timed assertions in tests).
//!
//! - `npe bench train`: training throughput of ResNet-N + M PEMs on one fixed random batch, for
//!   each backend (and optionally PyTorch through `scripts/bench_pytorch.py`), each measurement in
//!   its own child process (so peak RSS is per configuration), configurations alternating round
//!   by round so that machine noise hits them alike.
//! - `npe bench data`: decode + augmentation throughput of the loader, images/s on one core.

use super::EXIT_FAILURE;
use super::bench_common::{
    Measurement, Row, parse_child, peak_rss_mb, pipeline, random_batch, ratio, report_child, rotate, run_child,
};
use crate::{BackendChoice, Extensions};
use npe_core::backend::Device;
use npe_core::error::Result;
use npe_core::ir::Ir;
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
    /// ResNet-N's layers timed one by one (conv forward and gradients, batch norm, ReLU + add)
    /// on each backend and PyTorch: where a step's time goes, kernel by kernel.
    Ops(super::bench_ops::OpsBench),
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
        What::Train(t) => match t.child.clone() {
            Some(spec) => report_child(child(&t, &spec, ext)),
            None => parent(t),
        },
        What::Data(d) => data(d),
        What::Predict(p) => super::bench_predict::run(p, ext),
        What::Ops(o) => super::bench_ops::run(o),
    }
}

/// Build one configuration's model (ResNet-N + PEMs, or `--pipeline`'s) the way training does.
fn child_ir(t: &TrainBench, pems: usize, ext: &Extensions) -> Result<Ir> {
    let loaded = match &t.pipeline {
        Some(p) => {
            let sets = vec![
                format!("train.batch_size={}", t.batch),
                format!("train.threads={}", t.threads),
                format!("train.precision={}", t.precision[0]),
                format!("train.channels_last={}", t.channels_last[0]),
            ];
            npe_core::spec::load_file(p, &npe_core::spec::Overrides::with_sets(sets)).map_err(|d| d.to_string())?
        }
        None => {
            let text = pipeline(t.depth, pems, t.batch, t.threads, t.precision[0], t.channels_last[0]);
            let src = npe_core::source::SourceText::from_string("bench.yaml", text);
            npe_core::spec::load_source(src, &Default::default()).map_err(|d| d.to_string())?
        }
    };
    Ok(npe_core::ir::build(&loaded, &ext.registry).map(|(ir, _)| ir).map_err(|d| d.to_string())?)
}

/// Child: `warmup + steps` training steps on one fixed random batch; the timed steps' rate.
fn child(t: &TrainBench, spec: &str, ext: &Extensions) -> Result<Measurement> {
    let (choice, pems) = parse_child(spec, true)?;
    let ir = child_ir(t, pems, ext)?;
    let uniform = vec![1.0 / ir.num_classes() as f64; ir.num_classes()];
    let ctx = npe_core::model::build_context(&ir, &ext.registry, t.device, uniform);
    let backend = super::session::backend(choice);
    let mut exec = npe_core::exec::build(backend.as_ref(), &ir, &ctx).map_err(|e| e.to_string())?;
    let batch = random_batch(&ir, t.batch);
    let [_, _, h, w] = batch.shape;
    let mut loss = 0.0;
    let mut t0 = Instant::now();
    for step in 0..t.warmup + t.steps {
        if step == t.warmup {
            t0 = Instant::now();
        }
        loss = exec.train_step(&batch, 0.1).map_err(|e| e.to_string())?.total;
    }
    let dt = t0.elapsed().as_secs_f64();
    let images = (t.steps * t.batch) as f64;
    Ok(Measurement {
        img_s: images / dt,
        pixels_s: images * (h * w) as f64 / dt,
        step_s: dt / t.steps as f64,
        peak_rss_mb: peak_rss_mb(),
        describe: exec.describe(),
        loss,
    })
}

/// One configuration of the rotation.
#[derive(Clone)]
struct Config {
    label: String,
    backend: String,
    pems: usize,
    precision: Precision,
    channels_last: bool,
}

fn measure(c: &Config, t: &TrainBench) -> Result<Measurement> {
    let cmd = if c.backend == "pytorch" {
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
    run_child(&c.label, cmd)
}

/// The configurations: backends (PyTorch first when asked) × PEM counts × precisions × layouts.
fn configs(t: &TrainBench) -> Result<Vec<Config>> {
    for b in &t.backends {
        b.ensure_compiled()?;
    }
    let mut backends: Vec<String> = if t.backends.is_empty() {
        [BackendChoice::Burn, BackendChoice::Tch].into_iter().filter(|b| b.compiled()).map(|b| b.to_string()).collect()
    } else {
        t.backends.iter().map(|b| b.to_string()).collect()
    };
    if t.pytorch.is_some() && t.pipeline.is_none() {
        backends.insert(0, "pytorch".into());
    }
    let pems_list = if t.pipeline.is_some() { vec![0] } else { t.pems.clone() };
    let variants: Vec<(Precision, bool)> =
        t.precision.iter().flat_map(|&p| t.channels_last.iter().map(move |&cl| (p, cl))).collect();
    let mut configs = vec![];
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
    Ok(configs)
}

/// The table (or `--json`), and each PEM count's overhead over plain CE where 0 was measured.
fn print_rows(t: &TrainBench, model: &str, rows: &[Row]) {
    if t.json {
        println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
        return;
    }
    println!(
        "\n{model}: training throughput at batch {}, {} threads; median of {} alternating rounds",
        t.batch, t.threads, t.rounds
    );
    println!(
        "{:<14} {:>10} {:>17} {:>12} {:>10} {:>12} {:>12}  {}",
        "config", "img/s", "[min – max]", "Mpixel/s", "peak MB", "× PyTorch", "RSS × PyT", "what"
    );
    for r in rows {
        println!(
            "{:<14} {:>10.1} {:>17} {:>12.3} {:>10.0} {:>12} {:>12}  {}",
            r.config,
            r.img_s_median,
            format!("[{:.1} – {:.1}]", r.img_s_min, r.img_s_max),
            r.pixels_s_median / 1e6,
            r.peak_rss_mb,
            ratio(r.speed_vs_pytorch),
            ratio(r.rss_vs_pytorch),
            r.describe
        );
    }
    if t.pipeline.is_some() {
        return;
    }
    for r in rows.iter().filter(|r| r.pems > 0) {
        let base_label = r.config.replacen(&format!("M={}", r.pems), "M=0", 1);
        if let Some(base) = rows.iter().find(|b| b.config == base_label) {
            println!(
                "PEM overhead {}: {:+.1}% time per step",
                r.config,
                100.0 * (base.img_s_median / r.img_s_median - 1.0)
            );
        }
    }
}

fn parent(t: TrainBench) -> ExitCode {
    let configs = match configs(&t) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(super::EXIT_INVALID);
        }
    };
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
    let labels: Vec<String> = configs.iter().map(|c| c.label.clone()).collect();
    let results = match rotate(&labels, t.rounds, |i| measure(&configs[i], &t)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let rows: Vec<Row> = configs
        .iter()
        .zip(&results)
        .map(|(c, ms)| {
            let pytorch = configs
                .iter()
                .position(|d| {
                    d.backend == "pytorch"
                        && d.pems == c.pems
                        && d.precision == c.precision
                        && d.channels_last == c.channels_last
                })
                .or_else(|| configs.iter().position(|d| d.backend == "pytorch" && d.pems == c.pems));
            Row::of(&c.label, &c.backend, c.pems, ms, pytorch.map(|j| &results[j][..]))
        })
        .collect();
    print_rows(&t, &model, &rows);
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
