//! `npe kinds`: the node vocabulary.

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
    ExitCode::SUCCESS
}
