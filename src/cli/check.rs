//! `npe check FILE...`

use super::{EXIT_INVALID, SetArgs, report};
use npe_core::Registry;
use npe_core::spec::{Overrides, load_file};
use std::path::PathBuf;
use std::process::ExitCode;

/// Validate every file; print all diagnostics; exit 2 if any file has errors.
pub(crate) fn run(files: &[PathBuf], set: &SetArgs, registry: &Registry) -> ExitCode {
    let overrides = Overrides::with_sets(set.sets.clone());
    let mut failed = 0usize;
    for file in files {
        let result = load_file(file, &overrides).and_then(|loaded| npe_core::ir::build(&loaded, registry));
        match result {
            Ok((ir, warnings)) => {
                report(&warnings);
                let ops = ir.ops().count();
                println!("{}: ok ({} nodes, {} classes, {})", file.display(), ops, ir.num_classes(), ir.data.image);
            }
            Err(diags) => {
                report(&diags);
                let n = diags.errors().count();
                eprintln!("{}: {n} error{}", file.display(), if n == 1 { "" } else { "s" });
                failed += 1;
            }
        }
    }
    if failed > 0 { ExitCode::from(EXIT_INVALID) } else { ExitCode::SUCCESS }
}
