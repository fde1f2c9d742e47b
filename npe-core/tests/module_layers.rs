//! `npe-core`'s top-level modules form layers: no module reaches (through `crate::`/`super::`
//! paths) a module that reaches it back. Read from the sources, so a new cycle fails here.

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;
use std::collections::BTreeMap;
use std::path::Path;

/// `(module, module it uses)` for every `crate::name` in the files of each top-level module.
fn edges() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = vec![];
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
            if e.is_dir() {
                stack.push(e);
                continue;
            }
            let rel = e.strip_prefix(&src).unwrap();
            let top =
                rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
            if top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&e).unwrap();
            for (i, _) in text.match_indices("crate::") {
                let name: String = text[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let is_module = src.join(&name).is_dir() || src.join(format!("{name}.rs")).is_file();
                if is_module && name != top {
                    out.push((top.clone(), name));
                }
            }
        }
    }
    out
}

#[test]
fn the_core_modules_have_no_cycle() {
    let mut g = DiGraph::<String, ()>::new();
    let mut idx = BTreeMap::new();
    for (a, b) in edges() {
        let ia = *idx.entry(a.clone()).or_insert_with(|| g.add_node(a.clone()));
        let ib = *idx.entry(b.clone()).or_insert_with(|| g.add_node(b.clone()));
        g.update_edge(ia, ib, ());
    }
    assert!(idx.contains_key("train") && idx.contains_key("types"), "the scan found the modules: {idx:?}");
    let cycles: Vec<Vec<String>> = tarjan_scc(&g)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| c.into_iter().map(|i| g[i].clone()).collect())
        .collect();
    assert!(cycles.is_empty(), "module cycles: {cycles:?}");
    // The leaf layer imports nothing from the crate.
    for leaf in ["types", "tensor"] {
        let uses: Vec<String> = g.neighbors(idx[leaf]).map(|i| g[i].clone()).collect();
        assert!(uses.is_empty(), "`{leaf}` must be a leaf, uses {uses:?}");
    }
}
