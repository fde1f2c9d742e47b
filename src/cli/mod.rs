//! Command-line interface: `npe check | graph | kinds | data | train | eval | predict | export | compare | study | bench`.

mod bench;
mod bench_common;
mod bench_ops;
mod bench_predict;
mod check;
mod child;
mod compare;
mod data;
mod eval;
mod export;
mod graph;
mod kinds;
mod launch;
mod lock;
mod predict;
mod session;
mod study;
mod train;

use crate::Extensions;
use clap::{Parser, Subcommand};
use npe_core::{Diagnostics, Registry};
use std::path::PathBuf;
use std::process::ExitCode;

// npe's exit codes, every command's (the README's "Exit codes" lists them): 0 success.
/// Exit code for failures while running (I/O, numerical, a failed run of a study).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for invalid input (pipeline errors, bad flags, stale study runs).
pub const EXIT_INVALID: u8 = 2;
/// Exit code of a run stopped early with a resumable checkpoint (Ctrl-C, SIGTERM).
pub const EXIT_INTERRUPTED: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "npe",
    version,
    about = "Neural Prior Estimation for long-tailed learning: YAML pipelines on burn or libtorch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--set` flags shared by commands that load a pipeline.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct SetArgs {
    /// Override a pipeline value: `--set train.epochs=5` (repeatable; later wins; value read as YAML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate pipelines: exit 0 if valid, 2 with every error as FILE:LINE:COL on stderr.
    Check {
        /// Pipeline files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Print a pipeline's graph (Graphviz DOT or Mermaid) on stdout.
    Graph {
        /// Pipeline file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "dot")]
        format: graph::GraphFormat,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Train a pipeline: progress, metrics.jsonl, checkpoints every epoch, summary.json.
    Train(train::TrainArgs),
    /// Evaluate a checkpoint: per-class table and group accuracies.
    Eval(eval::EvalArgs),
    /// Apply a trained model to new images: top-k classes per output, or label maps.
    Predict(predict::PredictArgs),
    /// Export a trained model (with its adjusters inside the graph) to ONNX.
    Export(export::ExportArgs),
    /// Finished runs side by side: accuracy by group, IoU, prior fit, differences to the first.
    Compare(compare::CompareArgs),
    /// Run a study: pipelines × variants × seeds, then the table (mean ± std) and a report.
    Study(study::StudyArgs),
    /// Benchmarks: training throughput of the backends, data loader throughput.
    Bench(bench::BenchArgs),
    /// List the node kinds this program knows.
    Kinds,
    /// Show the data a pipeline trains on: per-class counts, imbalance factor, groups.
    Data {
        /// Pipeline file.
        file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also decode every image file (and label map) and list each unreadable one; exit 1 if any.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        set: SetArgs,
    },
}

/// Run the CLI with user extensions (custom node kinds).
pub fn main_with(ext: Extensions) -> ExitCode {
    init_tracing();
    npe_core::tensor::quiet_guarded_panics();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_INVALID } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check { files, set } => check::run(&files, &set, &ext.registry),
        Command::Graph { file, format, set } => graph::run(&file, format, &set, &ext.registry),
        Command::Kinds => kinds::run(&ext.registry),
        Command::Train(args) => train::run(args, &ext),
        Command::Eval(args) => eval::run(args, &ext),
        Command::Predict(args) => predict::run(args, &ext),
        Command::Export(args) => export::run(args, &ext),
        Command::Compare(args) => compare::run(&args),
        Command::Bench(args) => bench::run(args, &ext),
        Command::Study(args) => study::run(args, &ext),
        Command::Data { file, json, verify, set } => data::run(&file, &set, json, verify, &ext.registry),
    }
}

/// Logging: `NPE_LOG` (or `RUST_LOG`) filters, default `info` for npe.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("NPE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "warn,npe=info,npe_core=info,npe_backend_burn=info,npe_backend_tch=info".into());
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Print diagnostics to stderr.
pub(crate) fn report(diags: &Diagnostics) {
    for d in &diags.0 {
        eprintln!("{d}");
    }
}

/// Load and validate a pipeline; on failure print everything and return the exit code.
pub(crate) fn load_ir(
    file: &std::path::Path,
    set: &SetArgs,
    registry: &Registry,
) -> Result<(npe_core::spec::LoadedPipeline, npe_core::ir::Ir), ExitCode> {
    let overrides = npe_core::spec::Overrides::with_sets(set.sets.clone());
    let loaded = npe_core::spec::load_file(file, &overrides).map_err(|d| {
        report(&d);
        ExitCode::from(EXIT_INVALID)
    })?;
    match npe_core::ir::build(&loaded, registry) {
        Ok((ir, warnings)) => {
            report(&warnings);
            Ok((loaded, ir))
        }
        Err(d) => {
            report(&d);
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}
