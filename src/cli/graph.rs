//! `npe graph FILE --format dot|mermaid`

use super::{SetArgs, load_ir};
use npe_core::Registry;
use npe_core::ir::render::{Format, render};
use std::path::Path;
use std::process::ExitCode;

/// Output format flag.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz DOT (`| dot -Tsvg`).
    Dot,
    /// Mermaid flowchart (Markdown, GitHub).
    Mermaid,
}

pub(crate) fn run(file: &Path, format: GraphFormat, set: &SetArgs, registry: &Registry) -> ExitCode {
    match load_ir(file, set, registry) {
        Ok((_, ir)) => {
            let f = match format {
                GraphFormat::Dot => Format::Dot,
                GraphFormat::Mermaid => Format::Mermaid,
            };
            print!("{}", render(&ir, f));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
