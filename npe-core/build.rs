//! Finds the built-in node kinds and data sources: every `src/nodes/*.rs` (but `mod.rs`) that
//! contains `impl NodeDef for TYPE` becomes `pub mod FILE` of `nodes`, and `TYPE` is
//! registered; likewise `src/data/sources/*.rs` with `impl SourceDef for TYPE`. Adding a kind
//! or a source is adding one file.

use std::fmt::Write;
use std::path::Path;

/// `(mods, entries)`: a `pub mod` per file of `dir`, and `entry(file, TYPE)` per `impl TRAIT for TYPE`.
fn scan(dir: &Path, marker: &str, entry: &dyn Fn(&str, &str) -> String) -> (String, String) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rs") && p.file_stem().is_some_and(|s| s != "mod"))
        .collect();
    files.sort();
    let (mut mods, mut kinds) = (String::new(), String::new());
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).expect("a readable source file");
        writeln!(mods, "#[path = {:?}]\npub mod {stem};", path.display().to_string()).unwrap();
        for (i, _) in text.match_indices(marker) {
            let ty: String =
                text[i + marker.len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            kinds.push_str(&entry(&stem, &ty));
        }
    }
    (mods, kinds)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mods, kinds) = scan(&root.join("src/nodes"), "impl NodeDef for ", &|stem, ty| {
        format!("        crate::kind::KindInfo::of::<{stem}::{ty}>(),\n")
    });
    let code = format!(
        "{mods}\n/// Every built-in kind, from the files of `src/nodes/`.\npub(crate) fn builtin() -> Vec<crate::kind::KindInfo> {{\n    vec![\n{kinds}    ]\n}}\n"
    );
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_kinds.rs");
    std::fs::write(out, code).expect("write builtin_kinds.rs");
    let (mods, sources) = scan(&root.join("src/data/sources"), "impl SourceDef for ", &|stem, ty| {
        format!("    &crate::data::source::Erased::<{stem}::{ty}>::NEW,\n")
    });
    let code = format!(
        "{mods}\n/// Every built-in source, from the files of `src/data/sources/`, by file name.\npub(crate) static BUILTIN: &[&dyn crate::data::source::Source] = &[\n{sources}];\n"
    );
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_sources.rs");
    std::fs::write(out, code).expect("write builtin_sources.rs");
}
