//! `npe eval PIPELINE --checkpoint PATH`.

use super::session::{BackendArgs, print_report, session};
use super::{EXIT_FAILURE, SetArgs, load_ir};
use crate::Extensions;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct EvalArgs {
    /// Pipeline file.
    pub file: PathBuf,
    /// Checkpoint or model file (safetensors) to evaluate.
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Say so when the model was trained on other data than the pipeline evaluates it on (a
/// same-architecture model from another data set evaluates without an error otherwise).
fn warn_if_other_data(model: &std::path::Path, ir: &npe_core::ir::Ir) {
    use npe_core::train::fingerprint::TrainedOn;
    let Ok(ck) = npe_core::checkpoint::Checkpoint::load(model) else { return };
    let Some(then) = ck.trained_on.as_deref().and_then(|t| serde_json::from_str::<TrainedOn>(t).ok()) else {
        return;
    };
    let changes = then.differences(&TrainedOn::of(ir));
    if !changes.is_empty() {
        eprintln!(
            "warning: {} was trained on other data than this pipeline evaluates it on:\n    {}\n  (the numbers below are for the pipeline's data)",
            model.display(),
            changes.join("\n    ")
        );
    }
}

pub(crate) fn run(args: EvalArgs, ext: &Extensions) -> ExitCode {
    let (_, ir) = match load_ir(&args.file, &args.set, &ext.registry) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut s = match session(ir, &args.backend, ext) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(e) = s.load_params(&args.checkpoint) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    warn_if_other_data(&args.checkpoint, &s.ir);
    let report = match s.evaluate() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let d = s.data_report();
    // What `npe predict` / `npe export` of this model need, beside it (no training data then).
    let stored = npe_core::train::calibrations::Calibrations::beside(&args.checkpoint);
    let images = d.train_images.min(s.ir.eval.prior_train_samples);
    let provenance = format!("npe eval of {} on {}", args.checkpoint.display(), d.name);
    match npe_core::train::calibrations::Calibrations::of(&report, &d.classes, &d.train_counts, images, provenance)
        .write_to(&stored)
    {
        Ok(()) => eprintln!("calibrations stored in {}", stored.display()),
        Err(e) => eprintln!("warning: could not store the calibrations: {e}"),
    }
    if args.json {
        let out = npe_core::report::EvalOutput {
            checkpoint: args.checkpoint.display().to_string(),
            backend: s.exec.describe(),
            data: Some(d),
            eval: report,
        };
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!(
            "{}: {} with {} ({} test images)",
            args.checkpoint.display(),
            d.name,
            s.exec.describe(),
            d.test_images
        );
        print_report(&report, &d.classes, &d.groups, true);
    }
    ExitCode::SUCCESS
}
