//! `npe kinds`: the node vocabulary, and the backends and devices this build can use.

use crate::BackendChoice;
use npe_core::Registry;
use std::process::ExitCode;

pub(crate) fn run(registry: &Registry) -> ExitCode {
    let mut kinds: Vec<_> = registry.kinds().collect();
    kinds.sort_by_key(|k| (k.category, k.name.clone()));
    let mut last = None;
    for k in kinds {
        if last != Some(k.category) {
            println!("{}:", k.category.as_str());
            last = Some(k.category);
        }
        println!("  {:<18} {}", k.name, k.summary);
    }
    println!("data sources (data.source; options under data.<source>):");
    for src in npe_core::data::source::all() {
        let task = if src.segmentation() { "per-pixel labels" } else { "image labels" };
        println!("  {:<18} {} [{task}]", src.name(), src.summary());
        if src.has_options() {
            println!("  {:<18} options: {}", "", src.option_fields().join(", "));
        }
    }
    println!("backends (--backend) and devices (--device):");
    for choice in [BackendChoice::Burn, BackendChoice::Tch] {
        if choice.compiled() {
            let b = super::session::backend(choice);
            println!("  {:<18} {}", choice.to_string(), b.devices().join(", "));
            let dp = b.collectives().unwrap_or_else(|| "none (--nproc-per-node needs --backend tch)".into());
            println!("  {:<18} data-parallel: {dp}", "");
        } else {
            println!("  {:<18} not compiled (rebuild with `--features {choice}`)", choice.to_string());
        }
    }
    ExitCode::SUCCESS
}
