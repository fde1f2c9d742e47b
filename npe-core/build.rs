//! Finds the built-in node kinds: every `src/nodes/*.rs` (but `mod.rs`) that contains
//! `impl NodeDef for TYPE` becomes `pub mod FILE` of `nodes`, and `TYPE` is registered. Adding a
//! kind is adding one file.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/nodes");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("src/nodes")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rs") && p.file_stem().is_some_and(|s| s != "mod"))
        .collect();
    files.sort();
    let (mut mods, mut kinds) = (String::new(), String::new());
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).expect("readable node file");
        writeln!(mods, "#[path = {:?}]\npub mod {stem};", path.display().to_string()).unwrap();
        for (_, rest) in text.match_indices("impl NodeDef for ").map(|(i, _)| ((), &text[i + 17..])) {
            let ty: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            writeln!(kinds, "        crate::kind::KindInfo::of::<{stem}::{ty}>(),").unwrap();
        }
    }
    let code = format!(
        "{mods}\n/// Every built-in kind, from the files of `src/nodes/`.\npub(crate) fn builtin() -> Vec<crate::kind::KindInfo> {{\n    vec![\n{kinds}    ]\n}}\n"
    );
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_kinds.rs");
    std::fs::write(out, code).expect("write builtin_kinds.rs");
}
