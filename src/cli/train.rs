//! `npe train PIPELINE`.

use super::launch::{DistArgs, launch};
use super::session::{BackendArgs, backend, print_report, session};
use super::{EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_INVALID, SetArgs, load_ir};
use crate::Extensions;
use npe_core::dist::World;
use npe_core::error::{IoContext, Result};
use npe_core::train::fingerprint::RunFingerprint;
use npe_core::train::{ProgressMode, TrainError, TrainOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub(crate) struct TrainArgs {
    /// Pipeline file.
    pub file: PathBuf,
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Output folder (default: runs/<pipeline name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the newest checkpoint in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// Progress display.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Progress,
    /// Stop after this many optimisation steps, writing a resumable checkpoint.
    #[arg(long, value_name = "N")]
    pub stop_after_steps: Option<u64>,
    /// With --resume: if the newest checkpoint is damaged, continue from the newest good one.
    #[arg(long, requires = "resume")]
    pub fallback: bool,
    /// With --resume: continue although the pipeline, backend or data differ from what the run
    /// was started with (say, a lower learning rate on purpose); the changes are recorded in
    /// the run's `resumes.jsonl`. Without it such a resume is refused, naming the changes.
    #[arg(long, requires = "resume")]
    pub allow_changes: bool,
    #[command(flatten)]
    pub dist: DistArgs,
}

/// Hold an exclusive advisory lock on the run folder for the life of the run (the OS releases
/// it if the process dies), so two runs cannot write into one folder.
fn lock_run(out: &std::path::Path) -> Result<std::fs::File> {
    super::lock::lock_folder(out, ".npe.lock", || {
        format!(
            "another npe run is writing into {}\n  hint: wait for it to finish, or choose another --out",
            out.display()
        )
    })
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Progress {
    /// A bar on a terminal, log lines otherwise.
    Auto,
    /// Log lines.
    Log,
    /// Epoch summaries only.
    Quiet,
}

pub(crate) fn run(args: TrainArgs, ext: &Extensions) -> ExitCode {
    match train(args, ext) {
        Ok(code) | Err(code) => code,
    }
}

/// `npe train` in its steps; `Err` is an early exit with its message already printed.
fn train(args: TrainArgs, ext: &Extensions) -> Result<ExitCode, ExitCode> {
    let (loaded, ir) = load_ir(&args.file, &args.set, &ext.registry)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&ir.name));
    args.backend.check_device()?;
    let fingerprint = RunFingerprint::of(&ir, &args.backend.choice()?.to_string());
    let timeout = Duration::from_secs_f64(ir.train.dist_timeout_s);
    let world = data_parallel_world(&args, timeout)?;
    if args.dist.launches() {
        return Ok(launch(&args.dist, timeout));
    }
    let writes = world.as_ref().is_none_or(|w| w.rank == 0);
    let _lock = if writes { Some(claim_out(&out, &args, &fingerprint)?) } else { None };
    // `--device cuda` in a data-parallel run: each worker on its own GPU, cuda:LOCAL_RANK.
    let mut backend = args.backend.clone();
    if let Some(w) = world.as_ref().filter(|_| backend.device == "cuda") {
        backend.device = format!("cuda:{}", w.local_rank);
    }
    let mut s = session(ir, &backend, ext)?;
    if let Some(w) = world.clone() {
        s.join(w);
    }
    // Record what ran, for reproducibility (a resume keeps what the run was started with).
    if writes && !(args.resume && out.join("run.json").is_file()) {
        write_provenance(&out, &loaded.source.text, &args, &s.exec.describe(), world.as_ref());
    }
    let opts = TrainOptions {
        out: out.clone(),
        resume: args.resume,
        progress: match args.progress {
            _ if !writes => ProgressMode::Quiet,
            Progress::Auto => ProgressMode::Auto,
            Progress::Log => ProgressMode::Log,
            Progress::Quiet => ProgressMode::Quiet,
        },
        stop: Some(stop_on_ctrl_c()),
        stop_after_steps: args.stop_after_steps,
        fallback: args.fallback,
    };
    Ok(outcome(s.train(&opts), &out, world.as_ref()))
}

/// The data-parallel world this process is a rank of (torchrun's variables), if any; a run
/// that will be data-parallel (`--nproc-per-node` too) needs a backend with collectives,
/// checked before any data is read.
fn data_parallel_world(args: &TrainArgs, timeout: Duration) -> Result<Option<World>, ExitCode> {
    let world = World::from_env(|k| std::env::var(k).ok(), timeout).map_err(|m| {
        eprintln!("error: data-parallel run: {m}");
        ExitCode::from(EXIT_INVALID)
    })?;
    if args.dist.launches() || world.is_some() {
        let size = world.as_ref().map_or(args.dist.nproc_per_node * args.dist.nnodes, |w| w.size);
        let choice = args.backend.choice()?;
        if backend(choice).collectives().is_none() {
            eprintln!(
                "error: data-parallel training ({size} processes) needs a collective engine, which backend `{choice}` lacks here (burn has collectives only on its CUDA backend)\n  hint: add --backend tch (libtorch's c10d)"
            );
            return Err(ExitCode::from(EXIT_INVALID));
        }
    }
    Ok(world)
}

/// Rank 0's claim on the run folder, before anything is written into it: the lock, a folder
/// free of another run's checkpoints (unless resuming), and the run's fingerprint.
fn claim_out(out: &Path, args: &TrainArgs, fingerprint: &RunFingerprint) -> Result<std::fs::File, ExitCode> {
    let fail = |m: String, code: u8| {
        eprintln!("error: {m}");
        ExitCode::from(code)
    };
    let lock = lock_run(out).map_err(|m| fail(m.to_string(), EXIT_FAILURE))?;
    npe_core::train::check_out(out, args.resume).map_err(|e| fail(e.to_string(), EXIT_FAILURE))?;
    record_fingerprint(out, fingerprint, args.resume, args.allow_changes)
        .map_err(|m| fail(m.to_string(), EXIT_INVALID))?;
    Ok(lock)
}

/// Ctrl-C asks the run to stop after its step (with a checkpoint); a second one quits now.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (a checkpoint will be written; Ctrl-C again to quit now)");
    });
    stop
}

/// What the user sees at the end, and the exit code: rank 0's report of a finished run, the
/// checkpoint of an interrupted one, or the error (named by rank in a data-parallel run).
fn outcome(result: Result<npe_core::report::Summary, TrainError>, out: &Path, world: Option<&World>) -> ExitCode {
    let writes = world.is_none_or(|w| w.rank == 0);
    match result {
        Ok(_) if !writes => ExitCode::SUCCESS,
        Ok(summary) => {
            println!(
                "{}: {} on {} ({} train / {} test images), {}",
                summary.pipeline,
                summary.backend,
                summary.data.name,
                summary.data.train_images,
                summary.data.test_images,
                summary.data.provenance
            );
            println!(
                "trained {} epochs, {} steps, {:.1} s, {:.0} img/s",
                summary.epochs, summary.steps, summary.train_seconds, summary.images_per_second
            );
            print_report(&summary.eval, &summary.data.classes, &summary.data.groups, false);
            println!(
                "\nresults: {}/summary.json, {}/metrics.jsonl; model: {}",
                out.display(),
                out.display(),
                summary.model
            );
            ExitCode::SUCCESS
        }
        Err(TrainError::Interrupted { .. }) if !writes => ExitCode::from(EXIT_INTERRUPTED),
        Err(e @ TrainError::Interrupted { .. }) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(e) => {
            let said = e.to_string();
            let rank = world.filter(|_| !said.starts_with("rank ")).map(|w| format!("[rank {}] ", w.rank));
            eprintln!("error: {}{e}", rank.unwrap_or_default());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// A new run records its fingerprint; a resume compares it with the recorded one and refuses
/// a different pipeline, backend or data unless `allow` (then the changes go to
/// `resumes.jsonl`). A run from before fingerprints were recorded gets one now.
fn record_fingerprint(out: &Path, now: &RunFingerprint, resume: bool, allow: bool) -> Result<()> {
    let recorded = if resume { RunFingerprint::read(out)? } else { None };
    let Some(recorded) = recorded else {
        return now.write(out);
    };
    let changes = recorded.changes(now);
    if changes.is_empty() {
        return Ok(());
    }
    if !allow {
        return Err(format!(
            "--resume: {} was started with other settings than these:\n    {}\n  hint: resume with the settings it was started with (its run.json lists them), or add --allow-changes to continue with these on purpose (recorded in resumes.jsonl)",
            out.display(),
            changes.join("\n    ")
        ).into());
    }
    tracing::warn!("resuming {} with changes (--allow-changes): {}", out.display(), changes.join("; "));
    let line = serde_json::json!({"args": std::env::args().collect::<Vec<_>>(), "changes": changes});
    let path = out.join("resumes.jsonl");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).at(&path)?;
    use std::io::Write as _;
    Ok(writeln!(f, "{line}").at(&path)?)
}

/// `pipeline.yaml` and `run.json` in the run folder: what ran, for reproducibility.
fn write_provenance(out: &std::path::Path, source: &str, args: &TrainArgs, backend: &str, world: Option<&World>) {
    let _ = std::fs::write(out.join("pipeline.yaml"), source);
    let run = serde_json::json!({
        "pipeline": args.file.display().to_string(),
        "set": args.set.sets,
        "backend": backend,
        "device": args.backend.device,
        "world_size": world.map_or(1, |w| w.size),
        "command": std::env::args().collect::<Vec<_>>(),
        "npe_version": env!("CARGO_PKG_VERSION"),
    });
    let _ = std::fs::write(out.join("run.json"), serde_json::to_vec_pretty(&run).unwrap_or_default());
}
