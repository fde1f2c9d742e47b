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
    let report = match s.evaluate() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let d = s.data_report();
    if args.json {
        let out = npe_core::train::EvalOutput {
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
