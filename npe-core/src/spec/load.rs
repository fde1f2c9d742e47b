//! Loading a pipeline: YAML file → figment (+ `NPE_` env, + `--set`) → typed [`PipelineSpec`].
//!
//! Each section and each node is deserialized on its own, so one run reports every error in
//! the file rather than the first one serde meets.

use super::locate::{ENV_PROVIDER, FILE_PROVIDER, Locator, SET_PROVIDER};
use super::yaml_map::{YamlMap, syntax_hint};
use super::{DataSpec, EvalSpec, NodeSpec, PipelineSpec, SECTIONS, Task, TrainSpec};
use crate::diag::{Diagnostic, Diagnostics, Origin, did_you_mean};
use crate::error::Result;
use crate::source::SourceText;
use figment::error::Kind;
use figment::providers::{Env, Format, Serialized, Yaml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Environment variables with the `NPE_` prefix that configure the program, not the pipeline.
pub const RESERVED_ENV: [&str; 8] =
    ["log", "backend", "device", "threads", "out", "data_home", "torch_venv", "torch_full"];

/// Overrides layered over the file: `NPE_` environment variables, then `--set` flags (later wins).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `key.path=value` strings, applied in order.
    pub sets: Vec<String>,
    /// Read `NPE_SECTION__KEY=value` environment variables.
    pub env: bool,
}

impl Overrides {
    /// Environment on, no flags.
    pub fn from_env() -> Self {
        Self { sets: vec![], env: true }
    }

    /// Environment on, plus flags.
    pub fn with_sets(sets: Vec<String>) -> Self {
        Self { sets, env: true }
    }
}

/// A loaded pipeline with what is needed to locate its values later.
#[derive(Clone, Debug)]
pub struct LoadedPipeline {
    /// The typed spec.
    pub spec: PipelineSpec,
    /// The text it came from.
    pub source: SourceText,
    /// Where each value came from.
    pub locator: Locator,
    /// Problems found while loading (errors and warnings); `ir::build` adds its own
    /// and fails if there is any error.
    pub diagnostics: Diagnostics,
    /// False when the `data:` section failed to parse (the spec then holds a placeholder).
    pub data_ok: bool,
}

/// Read and load a pipeline file.
pub fn load_file(path: &Path, overrides: &Overrides) -> Result<LoadedPipeline, Diagnostics> {
    let src = SourceText::read(path)?;
    load_source(src, overrides)
}

/// A provider wrapper that gives our providers recognisable names.
struct Named<P> {
    inner: P,
    name: &'static str,
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.inner.data()
    }
}

/// Deepest `[`/`{` nesting an `NPE_` environment value may have.
const MAX_ENV_NESTING: usize = 64;

/// `Some(depth)` once the brackets of `value` (outside quotes) nest deeper than `max`.
fn nesting_beyond(value: &str, max: usize) -> Option<usize> {
    let (mut depth, mut quote) = (0usize, None::<char>);
    for c in value.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => {
                depth += 1;
                if depth > max {
                    return Some(depth);
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn env_provider() -> Env {
    Env::prefixed("NPE_").split("__").ignore(&RESERVED_ENV)
}

/// What a `--set` flag does.
#[derive(Clone, Debug, PartialEq)]
pub enum SetOp {
    /// `key=value`: merged into the file's value (maps merge key by key).
    Merge(String, serde_yaml::Value),
    /// `key:=value`: replaces the file's value whole (a map loses the keys it does not repeat).
    Replace(String, serde_yaml::Value),
    /// `~key`: removes the key (its default applies).
    Delete(String),
}

/// Parse a `--set` flag: `key=value`, `key:=value` or `~key`.
pub fn parse_set_op(flag: &str) -> Result<SetOp> {
    let check = |key: &str| -> Result<String> {
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|s| s.is_empty()) {
            return Err(format!("`--set {flag}`: the key must be a dotted path like `train.epochs`").into());
        }
        Ok(key.to_string())
    };
    if let Some(key) = flag.strip_prefix('~') {
        return Ok(SetOp::Delete(check(key)?));
    }
    let (key, value) = parse_set(flag)?;
    match key.strip_suffix(':') {
        Some(k) => Ok(SetOp::Replace(check(k)?, value)),
        None => Ok(SetOp::Merge(key, value)),
    }
}

/// Apply a replace (`Some`) or delete (`None`) at a dotted path of `dict`; an error names the
/// missing part.
fn edit_path(dict: &mut Dict, path: &str, value: Option<figment::value::Value>) -> Result<()> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = dict;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = match value.is_some() {
            true => cur.entry(part.to_string()).or_insert_with(|| figment::value::Value::from(Dict::new())),
            false => cur.get_mut(*part).ok_or_else(|| format!("there is no `{}` to remove", parts[..=i].join(".")))?,
        };
        cur = match entry {
            figment::value::Value::Dict(_, d) => d,
            _ => return Err(format!("`{}` is not a map", parts[..=i].join(".")).into()),
        };
    }
    let last = parts[parts.len() - 1];
    match value {
        Some(v) => {
            cur.insert(last.to_string(), v);
        }
        None => {
            cur.remove(last).ok_or_else(|| format!("there is no `{path}` to remove"))?;
        }
    }
    Ok(())
}

/// Parse one `--set key=value` flag; the value is read as YAML (`5`, `true`, `[64, 32]`, text).
pub fn parse_set(flag: &str) -> Result<(String, serde_yaml::Value)> {
    let (key, value) = flag.split_once('=').ok_or_else(|| format!("`--set {flag}`: expected KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|s| s.is_empty()) {
        return Err(format!("`--set {flag}`: the key must be a dotted path like `train.epochs`").into());
    }
    let value =
        serde_yaml::from_str::<serde_yaml::Value>(value).unwrap_or(serde_yaml::Value::String(value.to_string()));
    Ok((key.to_string(), value))
}

/// Load a pipeline from text.
pub fn load_source(src: SourceText, overrides: &Overrides) -> Result<LoadedPipeline, Diagnostics> {
    // 1. Syntax, positions, duplicate keys (yaml-rust2), then serde_yaml's own reading.
    let map = read_yaml(&src)?;
    // 2. Layer overrides with figment, remembering where each overridden path came from.
    let mut locator = Locator::new(&src, map);
    let mut diags = Diagnostics::new();
    let mut figment = Figment::new().merge(Named { inner: Yaml::string(&src.text), name: FILE_PROVIDER });
    if overrides.env {
        figment = env_overrides(figment, &mut locator)?;
    }
    let (figment, edits) = set_overrides(figment, &overrides.sets, &mut locator, &mut diags);
    let mut dict: Dict = match figment.extract() {
        Ok(d) => d,
        Err(e) => {
            for err in e {
                diags.push(Diagnostic::error(src.at(1, 1), err.to_string()));
            }
            return Err(diags);
        }
    };
    apply_edits(&mut dict, edits, &mut locator, &mut diags);
    // 3. Sections, each on its own.
    let (spec, data_ok) = sections(&dict, &src, &locator, &mut diags);
    Ok(LoadedPipeline { spec, source: src, locator, diagnostics: diags, data_ok })
}

/// The file's YAML map with positions; syntax errors, duplicate keys and a top level that is
/// not a mapping are located errors.
fn read_yaml(src: &SourceText) -> Result<YamlMap, Diagnostics> {
    let whole_file = || src.at(1, 1);
    let (map, dups) = YamlMap::build(src)?;
    let parsed = serde_yaml::from_str::<serde_yaml::Value>(&src.text);
    if !dups.is_empty() {
        return Err(dups);
    }
    let top = match parsed {
        Ok(v) => v,
        Err(e) => {
            let origin = e.location().map(|l| src.at(l.line(), l.column())).unwrap_or_else(whole_file);
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            return Err(Diagnostic::error(origin, format!("YAML: {msg}")).with_opt_hint(syntax_hint(&msg)).into());
        }
    };
    match &top {
        serde_yaml::Value::Mapping(_) => {}
        serde_yaml::Value::Null => {
            return Err(Diagnostic::error(whole_file(), "the pipeline is empty")
                .with_hint(
                    "a pipeline needs at least `name`, `data`, `nodes` and `train`; see pipelines/quickstart.yaml",
                )
                .into());
        }
        other => {
            let what = match other {
                serde_yaml::Value::Sequence(_) => "a list",
                serde_yaml::Value::String(_) => "a string",
                serde_yaml::Value::Number(_) => "a number",
                serde_yaml::Value::Bool(_) => "a boolean",
                _ => "not a mapping",
            };
            return Err(Diagnostic::error(
                whole_file(),
                format!("the top level of a pipeline must be a mapping of sections, found {what}"),
            )
            .with_hint("start with `name: ...`, then `data:`, `nodes:`, `train:` sections")
            .into());
        }
    }

    Ok(map)
}

/// Merge the `NPE_*` environment variables over the file (a value nested too deeply for
/// figment's recursive parser is refused first).
fn env_overrides(figment: Figment, locator: &mut Locator) -> Result<Figment, Diagnostics> {
    let mut diags = Diagnostics::new();
    let mut too_deep = false;
    for (key, value) in env_provider().iter() {
        let key = key.as_str().to_string();
        let var = format!("NPE_{}", key.to_uppercase().replace('.', "__"));
        // figment reads these values with a recursive parser: a deeply nested one would
        // overflow the stack (an abort, not an error), so it is refused before it is read.
        if let Some(depth) = nesting_beyond(&value, MAX_ENV_NESTING) {
            diags.push(
                Diagnostic::error(
                    Origin::Env(var.clone()),
                    format!("`{var}` nests `[`/`{{` at least {depth} levels deep; at most {MAX_ENV_NESTING} are read"),
                )
                .with_hint(format!("unset {var}, or give the value in the pipeline file or with --set")),
            );
            too_deep = true;
        }
        locator.add_override(key, Origin::Env(var));
    }
    if too_deep {
        return Err(diags);
    }
    Ok(figment.merge(Named { inner: env_provider(), name: ENV_PROVIDER }))
}

/// Merge the `--set key=value` flags; replacements and deletions are returned, to be applied
/// after every merge ([`apply_edits`]).
fn set_overrides<'a>(
    mut figment: Figment,
    sets: &'a [String],
    locator: &mut Locator,
    diags: &mut Diagnostics,
) -> (Figment, Vec<(&'a String, SetOp)>) {
    let mut edits = vec![];
    for flag in sets {
        match parse_set_op(flag) {
            Ok(SetOp::Merge(key, value)) => {
                locator.add_override(key.clone(), Origin::Flag(flag.clone()));
                figment = figment.merge(Named { inner: Serialized::default(&key, value), name: SET_PROVIDER });
            }
            Ok(op) => edits.push((flag, op)),
            Err(m) => diags.push(Diagnostic::error(Origin::Flag(flag.clone()), m.to_string())),
        }
    }
    (figment, edits)
}

/// Apply `--set key:=value` and `--set ~key`, in flag order.
fn apply_edits(dict: &mut Dict, edits: Vec<(&String, SetOp)>, locator: &mut Locator, diags: &mut Diagnostics) {
    for (flag, op) in edits {
        let (key, value) = match op {
            SetOp::Replace(key, value) => {
                let v = figment::Figment::from(Serialized::default(&key, value))
                    .find_value(&key)
                    .map_err(|e| e.to_string());
                (key, Some(v))
            }
            SetOp::Delete(key) => (key, None),
            SetOp::Merge(..) => unreachable!("merged above"),
        };
        locator.add_override(key.clone(), Origin::Flag(flag.clone()));
        let result = match value {
            Some(Err(m)) => Err(m.into()),
            Some(Ok(v)) => edit_path(dict, &key, Some(v)),
            None => edit_path(dict, &key, None),
        };
        if let Err(m) = result {
            diags.push(Diagnostic::error(Origin::Flag(flag.clone()), format!("`--set {flag}`: {m}")));
        }
    }
}

/// The typed sections of the merged `dict`; whether the data section parsed.
fn sections(dict: &Dict, src: &SourceText, locator: &Locator, diags: &mut Diagnostics) -> (PipelineSpec, bool) {
    let whole_file = || src.at(1, 1);
    for key in dict.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            diags.push(Diagnostic::error(locator.key(key), format!("unknown top-level key `{key}`")).with_opt_hint(
                did_you_mean(key, SECTIONS.iter()).or_else(|| Some(format!("sections are: {}", SECTIONS.join(", ")))),
            ));
        }
    }
    let name = match dict.get("name") {
        Some(v) => field::<String>(v, "name", locator, diags).unwrap_or_default(),
        None => {
            diags.push(
                Diagnostic::error(whole_file(), "missing `name`").with_hint("add `name: my_experiment` at the top"),
            );
            String::new()
        }
    };
    let description = dict.get("description").and_then(|v| field::<String>(v, "description", locator, diags));
    let seed = dict.get("seed").and_then(|v| field::<u64>(v, "seed", locator, diags)).unwrap_or(0);
    let task = dict.get("task").and_then(|v| field::<Task>(v, "task", locator, diags)).unwrap_or_default();
    let data = match dict.get("data") {
        Some(v) => data_section(v, locator, diags),
        None => {
            diags.push(Diagnostic::error(whole_file(), "missing section `data`").with_hint(
                "add `data: {source: synthetic}` or point at a dataset, e.g. `data: {source: cifar10, root: PATH}`",
            ));
            None
        }
    };
    let train = dict.get("train").map_or_else(|| Some(TrainSpec::default()), |v| field(v, "train", locator, diags));
    let eval = dict.get("eval").map_or_else(|| Some(EvalSpec::default()), |v| field(v, "eval", locator, diags));
    let nodes = match dict.get("nodes") {
        Some(v) => node_specs(v, locator, diags),
        None => {
            diags.push(
                Diagnostic::error(whole_file(), "missing section `nodes`")
                    .with_hint("a pipeline needs at least a backbone, a head and a loss"),
            );
            vec![]
        }
    };
    let data_ok = data.is_some();
    let spec = PipelineSpec {
        name,
        description,
        seed,
        task,
        data: data.unwrap_or_else(DataSpec::placeholder),
        nodes,
        train: train.unwrap_or_default(),
        eval: eval.unwrap_or_default(),
    };
    (spec, data_ok)
}

/// The `data:` section: its shared fields typed, each source's options section kept as JSON for
/// the pipeline check (which knows the sources) to parse.
fn data_section(value: &Value, loc: &Locator, diags: &mut Diagnostics) -> Option<DataSpec> {
    let Value::Dict(tag, dict) = value else { return field(value, "data", loc, diags) };
    let (shared, options) = DataSpec::split_options(dict.clone().into_iter().collect());
    let mut spec: DataSpec = field(&Value::Dict(*tag, shared.into_iter().collect()), "data", loc, diags)?;
    for (key, v) in options {
        match v.deserialize::<serde_json::Value>() {
            Ok(j) => {
                spec.options.insert(key, j);
            }
            Err(e) => diags.push(figment_diag(&e, &format!("data.{key}"), loc)),
        }
    }
    Some(spec)
}

/// The `nodes:` mapping: names, kinds and raw parameters, in file order.
fn node_specs(value: &Value, loc: &Locator, diags: &mut Diagnostics) -> Vec<NodeSpec> {
    let Some(dict) = value.as_dict() else {
        diags.push(
            Diagnostic::error(loc.value("nodes"), "`nodes` must be a mapping of node name → node")
                .with_hint("write `nodes:` then one indented `name: {kind: ..., input: ...}` per node"),
        );
        return vec![];
    };
    let mut names: Vec<&String> = dict.keys().collect();
    // File order first, then nodes that only come from overrides (sorted).
    names.sort_by_key(|n| loc.map.node_order.iter().position(|m| m == *n).unwrap_or(usize::MAX));
    let mut out = Vec::new();
    for name in names {
        let path = format!("nodes.{name}");
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            diags.push(
                Diagnostic::error(loc.key(&path), format!("invalid node name `{name}`"))
                    .with_hint("node names are letters, digits and `_`, starting with a letter"),
            );
            continue;
        }
        if name == "data" {
            diags.push(
                Diagnostic::error(loc.key(&path), "`data` is reserved for the data source's outputs")
                    .with_hint("rename this node"),
            );
            continue;
        }
        let Some(fields) = dict[name].as_dict() else {
            diags.push(
                Diagnostic::error(loc.value(&path), format!("node `{name}` must be a mapping with a `kind`"))
                    .with_hint(format!("e.g. `{name}: {{kind: linear, input: features}}`")),
            );
            continue;
        };
        let mut params = fields.clone();
        let kind = match params.remove("kind") {
            Some(Value::String(_, k)) => k,
            Some(_) => {
                diags.push(Diagnostic::error(
                    loc.value(&format!("{path}.kind")),
                    format!("`kind` of node `{name}` must be a name"),
                ));
                continue;
            }
            None => {
                diags.push(
                    Diagnostic::error(loc.key(&path), format!("node `{name}` has no `kind`"))
                        .with_hint("add `kind: ...`; `npe kinds` lists them"),
                );
                continue;
            }
        };
        out.push(NodeSpec { name: name.clone(), kind, params: Value::from(params) });
    }
    out
}

/// Deserialize one value, turning every figment error into a located diagnostic. serde stops
/// at the first error, so after each one the offending key is removed and the value tried
/// again: one pass reports every unknown field and bad value of a section. The result parsed
/// without the offending keys is returned (errors are in `diags`), so that later stages can
/// still check the rest of the pipeline.
pub(crate) fn field<T: DeserializeOwned>(
    value: &Value,
    path: &str,
    loc: &Locator,
    diags: &mut Diagnostics,
) -> Option<T> {
    deserialize_all(value, path, loc, diags, |v| v.deserialize::<T>())
}

/// The retry loop behind [`field`], for any parse function of a value.
pub(crate) fn deserialize_all<T>(
    value: &Value,
    path: &str,
    loc: &Locator,
    diags: &mut Diagnostics,
    parse: impl Fn(&Value) -> Result<T, figment::Error>,
) -> Option<T> {
    let mut v = value.clone();
    let mut removed: Vec<Vec<String>> = Vec::new();
    for _ in 0..64 {
        let err = match parse(&v) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let err = err.into_iter().next().expect("a figment error holds at least one error");
        let key_path = offending_key(&err);
        if let Kind::MissingField(f) = &err.kind {
            // A required key we removed ourselves is already reported.
            let mut p = err.path.clone();
            p.push(f.to_string());
            if removed.contains(&p) {
                return None;
            }
        }
        diags.push(figment_diag(&err, path, loc));
        if key_path.is_empty() || !remove_path(&mut v, &key_path) {
            return None;
        }
        removed.push(key_path);
    }
    None
}

/// The key path to drop so that deserialization can get past `err`.
fn offending_key(err: &figment::Error) -> Vec<String> {
    let mut p = err.path.clone();
    if let Kind::UnknownField(f, _) = &err.kind {
        if p.last() != Some(f) {
            p.push(f.clone());
        }
    }
    if matches!(err.kind, Kind::MissingField(_)) {
        return vec![];
    }
    p
}

fn remove_path(v: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = v;
    for k in parents {
        cur = match cur {
            Value::Dict(_, d) => match d.get_mut(k) {
                Some(c) => c,
                None => return false,
            },
            Value::Array(_, a) => match k.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(c) => c,
                None => return false,
            },
            _ => return false,
        };
    }
    match cur {
        Value::Dict(_, d) => d.remove(last).is_some(),
        Value::Array(_, a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// A located diagnostic for one figment/serde error under `prefix`.
pub(crate) fn figment_diag(err: &figment::Error, prefix: &str, loc: &Locator) -> Diagnostic {
    let mut segments: &[String] = &err.path;
    if let Kind::UnknownField(f, _) = &err.kind {
        if segments.last() == Some(f) {
            segments = &segments[..segments.len() - 1];
        }
    }
    let mut path = prefix.to_string();
    for p in segments {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(p);
    }
    let at = |p: &str| {
        if p.is_empty() { "the pipeline".to_string() } else { format!("`{p}`") }
    };
    match &err.kind {
        Kind::UnknownField(f, expected) => {
            let full = if path.is_empty() { f.clone() } else { format!("{path}.{f}") };
            let hint = did_you_mean(f, expected.iter())
                .or_else(|| (!expected.is_empty()).then(|| format!("fields here are: {}", expected.join(", "))));
            Diagnostic::error(loc.key(&full), format!("unknown field `{f}` in {}", at(&path))).with_opt_hint(hint)
        }
        Kind::MissingField(f) => Diagnostic::error(loc.key(&path), format!("missing field `{f}` in {}", at(&path)))
            .with_hint(format!("add `{f}: ...`")),
        Kind::InvalidType(actual, expected) => {
            Diagnostic::error(loc.value(&path), format!("{}: expected {expected}, found {actual}", at(&path)))
        }
        Kind::InvalidValue(actual, expected) => {
            Diagnostic::error(loc.value(&path), format!("{}: invalid value {actual}, expected {expected}", at(&path)))
        }
        Kind::UnknownVariant(v, expected) => {
            let hint = did_you_mean(v, expected.iter()).or_else(|| Some(format!("one of: {}", expected.join(", "))));
            Diagnostic::error(loc.value(&path), format!("{}: unknown value `{v}`", at(&path))).with_opt_hint(hint)
        }
        Kind::InvalidLength(n, expected) => {
            Diagnostic::error(loc.value(&path), format!("{}: {n} elements, expected {expected}", at(&path)))
        }
        Kind::Message(m) => Diagnostic::error(loc.value(&path), format!("{}: {m}", at(&path))),
        other => Diagnostic::error(loc.value(&path), format!("{}: {other}", at(&path))),
    }
}

#[cfg(test)]
mod set_op_tests {
    use super::*;

    fn load(sets: &[&str]) -> Result<LoadedPipeline, Diagnostics> {
        let yaml = "name: t\ndata: {source: synthetic}\nnodes:\n  f: {kind: mlp, input: data}\ntrain:\n  epochs: 4\n  schedule: {kind: multistep, milestones: [2, 3]}\n";
        let o = Overrides { sets: sets.iter().map(|s| s.to_string()).collect(), env: false };
        load_source(SourceText::from_string("t.yaml", yaml), &o)
    }

    #[test]
    fn replace_and_delete_where_merge_would_keep_old_keys() {
        // Merging keeps `milestones`, which cosine rejects later; replacing drops it.
        let merged = load(&["train.schedule={kind: cosine}"]).unwrap();
        assert_eq!(merged.spec.train.schedule.milestones, vec![2, 3]);
        let replaced = load(&["train.schedule:={kind: cosine}"]).unwrap();
        assert!(replaced.spec.train.schedule.milestones.is_empty());
        let deleted = load(&["~train.schedule.milestones", "train.schedule.kind=cosine"]).unwrap();
        assert!(deleted.spec.train.schedule.milestones.is_empty());
        let e = load(&["~train.nothing"]).unwrap().diagnostics.to_string();
        assert!(e.contains("there is no `train.nothing` to remove"), "{e}");
    }
}
