//! `npe compare RUN...`: finished runs side by side (accuracy by group, IoU, prior fit).

use super::EXIT_FAILURE;
use npe_core::report::compare::{CompareOptions, TableStyle, compare, load_run};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct CompareArgs {
    /// Run directories (the `--out` of `npe train`) or JSON files of `npe eval --json`; the first is the baseline.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Write GitHub-flavoured Markdown tables.
    #[arg(long)]
    pub markdown: bool,
    /// Only these outputs in the accuracy / IoU tables, e.g. `--outputs npe` (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub outputs: Vec<String>,
    /// Leave out the learned-prior table.
    #[arg(long)]
    pub no_prior: bool,
}

pub(crate) fn run(args: &CompareArgs) -> ExitCode {
    let mut runs = Vec::new();
    let mut failed = false;
    for path in &args.runs {
        match load_run(path) {
            Ok(r) => runs.push(r),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        return ExitCode::from(EXIT_FAILURE);
    }
    let opts = CompareOptions {
        style: if args.markdown { TableStyle::Markdown } else { TableStyle::Text },
        outputs: args.outputs.clone(),
        no_prior: args.no_prior,
    };
    print!("{}", compare(&runs, &opts));
    ExitCode::SUCCESS
}
