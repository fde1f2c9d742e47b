//! `npe check` and `npe graph` end to end: shipped pipelines are valid, every file of the
//! malformed corpus gets a located error and exit 2 (never a panic), overrides are located.

mod common;
use common::{npe, root, run};
use std::io::Write;

#[test]
fn shipped_pipelines_pass_check() {
    let mut files: Vec<_> = std::fs::read_dir(root().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "expected the shipped pipelines, found {files:?}");
    let (code, out, err) = run(npe().arg("check").args(&files));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.lines().filter(|l| l.contains(": ok (")).count(), files.len(), "{out}");
}

#[test]
fn malformed_corpus_gives_located_errors() {
    let dir = root().join("tests/malformed");
    let table = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut checked = 0;
    for line in table.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, pos, msg) = (cols[0], cols[1], cols.get(2).copied().unwrap_or(""));
        let path = format!("tests/malformed/{file}");
        let (code, out, err) = run(npe().arg("check").arg(&path));
        assert_eq!(code, 2, "{file}: exit code\nstdout: {out}\nstderr: {err}");
        assert!(!err.contains("panicked"), "{file} panicked:\n{err}");
        let first = err.lines().next().unwrap_or_default();
        let prefix = format!("{path}:{pos}");
        assert!(first.starts_with(&prefix), "{file}: expected first line to start with `{prefix}`, got:\n{err}");
        assert!(first.contains(": error: "), "{file}: not an error line: {first}");
        assert!(err.contains(msg), "{file}: expected `{msg}` in:\n{err}");
        checked += 1;
    }
    assert!(checked >= 20, "the corpus must hold at least 20 files, found {checked}");
    // Every file in the folder is in the table.
    let files = std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().file_name() != "expected.tsv").count();
    assert_eq!(files, checked, "every corpus file needs a row in expected.tsv");
}

#[test]
fn hundred_megabyte_file_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let line = "key_number_padding: 0123456789012345678901234567890123456789012345678901234567890123\n";
    for _ in 0..(100 * 1024 * 1024 / line.len()) {
        f.write_all(line.as_bytes()).unwrap();
    }
    drop(f);
    let (code, _, err) = run(npe().arg("check").arg(&path));
    assert_eq!(code, 2);
    assert!(err.contains(":1:1: error: pipeline file is larger than 1024 KiB"), "{err}");
}

#[test]
fn all_errors_of_a_file_are_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.yaml");
    std::fs::write(
        &path,
        "name: many\ndata: {source: synthetic, augmnt: {}}\nnodes:\n  f: {kind: mlpp, input: data}\n  l: {kind: linear, input: g}\n  ce: {kind: cross_entropy, input: l}\ntrain: {epochs: 0, optimizer: {lr: 0}}\n",
    )
    .unwrap();
    let (code, _, err) = run(npe().arg("check").arg(&path));
    assert_eq!(code, 2);
    for (pos, msg) in [
        ("2:27", "unknown field `augmnt`"),
        ("4:13", "unknown node kind `mlpp`"),
        ("5:28", "reads unknown node `g`"),
        ("7:17", "`epochs` must be at least 1"),
        ("7:36", "`lr` must be > 0"),
    ] {
        let want = format!("many.yaml:{pos}: error: ");
        assert!(err.lines().any(|l| l.contains(&want) && l.contains(msg)), "missing `{want}…{msg}` in:\n{err}");
    }
    assert!(err.contains("did you mean `mlp`?"), "{err}");
}

#[test]
fn overrides_are_applied_and_located() {
    // --set wins over the file and over the environment.
    let (code, out, err) = run(npe()
        .args(["check", "pipelines/quickstart.yaml", "--set", "data.synthetic.classes=9"])
        .env("NPE_DATA__SYNTHETIC__CLASSES", "8"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("9 classes"), "{out}");
    let (code, out, err) =
        run(npe().args(["check", "pipelines/quickstart.yaml"]).env("NPE_DATA__SYNTHETIC__CLASSES", "8"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("8 classes"), "{out}");
    // A value that breaks a check elsewhere is reported there (quickstart's tail group starts at class 7).
    let (code, _, err) =
        run(npe().args(["check", "pipelines/quickstart.yaml"]).env("NPE_DATA__SYNTHETIC__CLASSES", "5"));
    assert_eq!(code, 2);
    assert!(err.contains("pipelines/quickstart.yaml:24:") && err.contains("need head ≤ tail ≤ 5 classes"), "{err}");
    // Bad values from flags and env point at the flag / variable.
    let (code, _, err) = run(npe()
        .args(["check", "pipelines/quickstart.yaml", "--set", "train.optimizer.momentum=2"])
        .env("NPE_TRAIN__EPOCHS", "many"));
    assert_eq!(code, 2);
    assert!(err.contains("<--set train.optimizer.momentum=2>: error: `momentum` must be in [0, 1)"), "{err}");
    assert!(err.contains("<environment NPE_TRAIN__EPOCHS>: error: `train.epochs`: expected usize"), "{err}");
    let (code, _, err) = run(npe().args(["check", "pipelines/quickstart.yaml", "--set", "oops"]));
    assert_eq!(code, 2);
    assert!(err.contains("expected KEY=VALUE"), "{err}");
}

#[test]
fn graph_renders_with_graphviz_and_mermaid() {
    let (code, dot_src, err) = run(npe().args(["graph", "pipelines/quickstart.yaml", "--format", "dot"]));
    assert_eq!(code, 0, "{err}");
    assert!(dot_src.starts_with("digraph"), "{dot_src}");
    // Graphviz must accept it (CI installs graphviz; a missing `dot` is a failure, not a skip).
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("Graphviz `dot` is needed for this test: apt-get install graphviz");
    child.stdin.take().unwrap().write_all(dot_src.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dot failed: {}", String::from_utf8_lossy(&out.stderr));
    let svg = String::from_utf8_lossy(&out.stdout);
    for node in ["features", "prior", "npe", "pem_loss"] {
        assert!(svg.contains(node), "node {node} missing from the SVG");
    }
    let (code, mermaid, _) = run(npe().args(["graph", "pipelines/quickstart.yaml", "--format", "mermaid"]));
    assert_eq!(code, 0);
    assert!(mermaid.starts_with("flowchart TD") && mermaid.contains("n_prior -->|pem| n_npe"), "{mermaid}");
}

#[test]
fn unknown_backend_feature_is_a_clear_error() {
    // Whichever backend is not compiled in answers with the feature to enable.
    if !cfg!(feature = "tch") {
        let (code, _, err) = run(npe().args(["train", "pipelines/quickstart.yaml", "--backend", "tch"]));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("built without feature `tch`"), "{err}");
    } else {
        let (code, out, err) = run(npe().args(["kinds"]));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("npe_la"));
    }
}
