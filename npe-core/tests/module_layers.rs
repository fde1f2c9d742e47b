//! Every crate's modules form layers: no module reaches (through `crate::`/`super::` paths) a
//! module that reaches it back. Read from the sources, so a new cycle fails here: npe-core's
//! top-level modules, each backend crate's, and the CLI's commands (`src/cli/`).

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `.rs` files under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()) {
            if e.is_dir() {
                stack.push(e);
            } else if e.extension().is_some_and(|x| x == "rs") {
                out.push(e);
            }
        }
    }
    out
}

/// `(module, module it uses)` for every `<prefix>name` in the files of each module under
/// `src` (a module is a top-level file or folder there); `roots` (the crate or folder root,
/// which declares the others) are left out.
fn edges(src: &Path, prefix: &str, roots: &[&str]) -> Vec<(String, String)> {
    let mut out = vec![];
    for e in files(src) {
        let rel = e.strip_prefix(src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if roots.contains(&top.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&e).unwrap();
        for (i, _) in text.match_indices(prefix) {
            let name: String =
                text[i + prefix.len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let is_module = src.join(&name).is_dir() || src.join(format!("{name}.rs")).is_file();
            if is_module && name != top && !roots.contains(&name.as_str()) {
                out.push((top.clone(), name));
            }
        }
    }
    out
}

/// The graph of `edges`, its cycles (empty when layered) and its node index.
fn cycles(
    edges: Vec<(String, String)>,
) -> (DiGraph<String, ()>, BTreeMap<String, petgraph::graph::NodeIndex>, Vec<Vec<String>>) {
    let mut g = DiGraph::<String, ()>::new();
    let mut idx = BTreeMap::new();
    for (a, b) in edges {
        let ia = *idx.entry(a.clone()).or_insert_with(|| g.add_node(a.clone()));
        let ib = *idx.entry(b.clone()).or_insert_with(|| g.add_node(b.clone()));
        g.update_edge(ia, ib, ());
    }
    let found: Vec<Vec<String>> = tarjan_scc(&g)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| c.into_iter().map(|i| g[i].clone()).collect())
        .collect();
    (g, idx, found)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn the_core_modules_have_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (g, idx, found) = cycles(edges(&src, "crate::", &["lib"]));
    assert!(
        ["train", "types", "report", "metrics"].iter().all(|m| idx.contains_key(*m)),
        "the scan found the modules: {idx:?}"
    );
    assert!(found.is_empty(), "module cycles: {found:?}");
    // `error` imports nothing from the crate; the layer above it (`types`, `tensor`) only `error`.
    for (module, may) in [("error", &[][..]), ("types", &["error"][..]), ("tensor", &["error"][..])] {
        let uses: Vec<String> = g.neighbors(idx[module]).map(|i| g[i].clone()).collect();
        assert!(uses.iter().all(|u| may.contains(&u.as_str())), "`{module}` may use only {may:?}, uses {uses:?}");
    }
    // Reporting reads what training wrote; it never reaches into training.
    let report_uses: Vec<String> = g.neighbors(idx["report"]).map(|i| g[i].clone()).collect();
    assert!(!report_uses.contains(&"train".to_string()), "`report` uses {report_uses:?}");
}

#[test]
fn the_backend_crates_modules_have_no_cycle() {
    for krate in ["npe-backend-burn", "npe-backend-tch"] {
        let src = workspace().join(krate).join("src");
        assert!(files(&src).len() >= 3, "{krate}: the scan found its files");
        let (_, _, found) = cycles(edges(&src, "crate::", &["lib"]));
        assert!(found.is_empty(), "{krate}: module cycles: {found:?}");
    }
    // tch's collectives sit above both the ops and the process group (no circle between them).
    let (g, idx, _) = cycles(edges(&workspace().join("npe-backend-tch/src"), "crate::", &["lib"]));
    let uses = |m: &str| -> Vec<String> { g.neighbors(idx[m]).map(|i| g[i].clone()).collect() };
    assert!(uses("dist_ops").contains(&"dist".to_string()) && uses("dist_ops").contains(&"ops".to_string()));
    assert!(!uses("dist").contains(&"ops".to_string()), "dist uses {:?}", uses("dist"));
}

#[test]
fn the_cli_commands_have_no_cycle() {
    let (_, idx, found) = cycles(edges(&workspace().join("src/cli"), "super::", &["mod"]));
    assert!(["train", "launch", "study"].iter().all(|m| idx.contains_key(*m)), "the scan found: {idx:?}");
    assert!(found.is_empty(), "command cycles: {found:?}");
}

/// The scan itself finds a planted cycle (so a pass above means something).
#[test]
fn a_planted_cycle_is_found() {
    let dir = std::env::temp_dir().join(format!("npe-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.rs"), "use crate::b::X;").unwrap();
    std::fs::write(dir.join("b.rs"), "fn f() { crate::a::y() }").unwrap();
    std::fs::write(dir.join("c.rs"), "use crate::a::Z;").unwrap();
    let (_, _, found) = cycles(edges(&dir, "crate::", &["lib"]));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let mut cycle = found[0].clone();
    cycle.sort();
    assert_eq!(cycle, ["a", "b"]);
}
