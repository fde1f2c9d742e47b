//! The README stays true: its two set-up commands are the ones CI and users run, and its
//! pipeline reference documents every kind, every field of every kind, and every field of the
//! `data`, `train` and `eval` sections (fields are read from the code, not listed by hand).

mod common;
use common::root;
use figment::value::{Dict, Value};
use npe_core::Registry;
use npe_core::registry::ParseError;

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The text of the README section that starts with `heading` (up to the next heading).
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text.find(heading).unwrap_or_else(|| panic!("README has no section `{heading}`"));
    let rest = &text[start + heading.len()..];
    let end = rest.find("\n#").unwrap_or(rest.len());
    &rest[..end]
}

/// The fields a serde struct accepts, as its `deny_unknown_fields` error lists them.
fn fields_from(err: figment::Error) -> Vec<String> {
    for e in err {
        if let figment::error::Kind::UnknownField(_, expected) = e.kind {
            return expected.iter().map(|s| s.to_string()).collect();
        }
    }
    panic!("no unknown-field error");
}

fn probe() -> Value {
    let mut d = Dict::new();
    d.insert("__probe__".into(), Value::from(1));
    Value::from(d)
}

#[test]
fn every_kind_and_field_is_documented_in_its_section() {
    let text = readme();
    let reg = Registry::builtin();
    for kind in reg.names() {
        let sec = section(&text, &format!("#### `{kind}`"));
        let fields = match reg.parse(kind, &probe()) {
            Err(ParseError::Serde(e)) => fields_from(e),
            other => panic!("{kind}: probe did not fail as expected: {:?}", other.is_ok()),
        };
        assert!(!fields.is_empty());
        for f in fields {
            assert!(sec.contains(&format!("| `{f}` |")), "README section of `{kind}` lacks field `{f}`");
        }
    }
}

#[test]
fn every_section_field_is_documented() {
    let text = readme();
    let cases: [(&str, figment::Error); 3] = [
        ("### `data`", probe().deserialize::<npe_core::spec::DataSpec>().unwrap_err()),
        ("### `train`", probe().deserialize::<npe_core::spec::TrainSpec>().unwrap_err()),
        ("### `eval`", probe().deserialize::<npe_core::spec::EvalSpec>().unwrap_err()),
    ];
    for (heading, err) in cases {
        let sec = section(&text, heading);
        for f in fields_from(err) {
            assert!(sec.contains(&format!("`{f}`")), "README {heading} lacks field `{f}`");
        }
    }
    for key in npe_core::spec::SECTIONS {
        assert!(text.contains(&format!("| `{key}` |")), "README lacks top-level key `{key}`");
    }
}

#[test]
fn every_data_source_and_option_is_documented() {
    let text = readme();
    let sec = section(&text, "#### Data sources");
    for src in npe_core::data::source::all() {
        let row = sec
            .lines()
            .find(|l| {
                l.starts_with('|') && l.split('|').nth(1).is_some_and(|c| c.contains(&format!("`{}`", src.name())))
            })
            .unwrap_or_else(|| panic!("README's data sources table lacks `{}`", src.name()));
        for f in src.option_fields() {
            assert!(row.contains(&format!("{f}:")), "README's row of `{}` lacks option `{f}`: {row}", src.name());
        }
    }
}

#[test]
fn the_setup_commands_are_the_ones_ci_runs() {
    let text = readme();
    assert!(text.contains("cargo run --release -- train pipelines/quickstart.yaml"));
    assert!(text.contains("bash scripts/test.sh"));
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "exec bash scripts/test.sh"),
        ".ci/run must run the README's test command:\n{ci}"
    );
    for p in std::fs::read_dir(root().join("pipelines")).unwrap() {
        let name = p.unwrap().file_name().into_string().unwrap();
        assert!(text.contains(&format!("`pipelines/{name}`")), "README does not list pipelines/{name}");
    }
}
