//! What determines a run's result, recorded in its folder (`fingerprint.json`) when it starts
//! and compared before the run is reused by `npe study` or continued by `npe train --resume`:
//! the resolved pipeline (after every override), the backend, npe's version and the identity
//! of the data files (their names and sizes, hashed).

use crate::error::{Context, Result};
use crate::ir::Ir;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::Path;

/// File name of the fingerprint in a run folder.
pub const FILE: &str = "fingerprint.json";

/// The files under a data root: how many, their total size, and a hash of their relative
/// paths and sizes (cheap: no file is read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataIdentity {
    /// The data root, as resolved.
    pub root: String,
    /// Files under it.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// FNV-1a (64 bits, hex) of the sorted `relative/path size` lines.
    pub listing: String,
}

/// What determines a run's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFingerprint {
    /// npe's version.
    pub npe_version: String,
    /// Backend name (`burn`, `tch`).
    pub backend: String,
    /// What training reads: name, seed, data and train sections, and the nodes that train
    /// (backbones, heads, PEMs, losses).
    pub pipeline: Value,
    /// What only evaluation reads: the eval section, adjusters and evaluators (a change here
    /// is undone by `npe study --reevaluate`, without training).
    #[serde(default)]
    pub evaluation: Value,
    /// The data files, for sources read from disk (none for data generated in code).
    pub data: Option<DataIdentity>,
}

/// What a model was trained on, stored in its checkpoints and `model.safetensors`: the data
/// section (source, root, long tail, augmentation...) and the data files' identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedOn {
    /// The resolved `data:` section.
    pub data_spec: Value,
    /// The data files, for sources read from disk.
    pub data: Option<DataIdentity>,
}

impl TrainedOn {
    /// What `ir` trains on.
    pub fn of(ir: &Ir) -> Self {
        let root = crate::data::resolve_root(&ir.data_spec).unwrap_or_default();
        TrainedOn { data_spec: serde_json::to_value(&ir.data_spec).unwrap_or(Value::Null), data: data_identity(&root) }
    }

    /// How `now` differs (`self` is what the model was trained on); empty when alike. The
    /// augmentation and loader settings are left out: they change training, not the data.
    pub fn differences(&self, now: &TrainedOn) -> Vec<String> {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                for k in ["augment", "loader", "on_corrupt"] {
                    m.remove(k);
                }
            }
            v
        };
        let mut out = vec![];
        let (a, b) = (comparable_data(&strip(&self.data_spec)), comparable_data(&strip(&now.data_spec)));
        diff_values("data", &a, &b, &mut out);
        if self.data != now.data {
            let d = |d: &Option<DataIdentity>| {
                d.as_ref().map_or("generated data".into(), |d| {
                    format!("{} files, {} bytes under {}", d.files, d.bytes, d.root)
                })
            };
            out.push(format!("data files: {} → {}", d(&self.data), d(&now.data)));
        }
        out
    }
}

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// The identity of the files under `root` (recursively; symbolic links are not followed).
/// None when `root` is empty (generated data) or not a folder.
pub fn data_identity(root: &Path) -> Option<DataIdentity> {
    if root.as_os_str().is_empty() || !root.is_dir() {
        return None;
    }
    let mut lines = vec![];
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let p = e.path();
            if t.is_dir() {
                dirs.push(p);
            } else if t.is_file() {
                let size = e.metadata().map_or(0, |m| m.len());
                let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned();
                lines.push((rel, size));
            }
        }
    }
    lines.sort();
    let mut h = 0xcbf29ce484222325u64;
    for (rel, size) in &lines {
        h = fnv(h, format!("{rel} {size}\n").as_bytes());
    }
    Some(DataIdentity {
        root: root.display().to_string(),
        files: lines.len() as u64,
        bytes: lines.iter().map(|l| l.1).sum(),
        listing: format!("{h:016x}"),
    })
}

/// The resolved pipeline as two JSON values whose leaves can be compared one by one: what
/// training reads, and what only evaluation reads.
pub fn pipeline_values(ir: &Ir) -> (Value, Value) {
    use crate::types::Category;
    let (mut trains, mut evaluates) = (serde_json::Map::new(), serde_json::Map::new());
    for &i in &ir.order {
        let node = &ir.graph[i];
        let body = Value::String(format!("{:?}", node.body));
        match node.op().map(|op| op.category()) {
            Some(Category::Adjuster | Category::Evaluator) => evaluates.insert(node.name.clone(), body),
            _ => trains.insert(node.name.clone(), body),
        };
    }
    let training = json!({
        "name": ir.name,
        "seed": ir.seed,
        "data": serde_json::to_value(&ir.data_spec).unwrap_or(Value::Null),
        "train": serde_json::to_value(&ir.train).unwrap_or(Value::Null),
        "nodes": trains,
    });
    let evaluation = json!({
        "eval": serde_json::to_value(&ir.eval).unwrap_or(Value::Null),
        "nodes": evaluates,
    });
    (training, evaluation)
}

impl RunFingerprint {
    /// The fingerprint of running `ir` on `backend`.
    pub fn of(ir: &Ir, backend: &str) -> Self {
        let root = crate::data::resolve_root(&ir.data_spec).unwrap_or_default();
        let (pipeline, evaluation) = pipeline_values(ir);
        RunFingerprint {
            npe_version: env!("CARGO_PKG_VERSION").into(),
            backend: backend.into(),
            pipeline,
            evaluation,
            data: data_identity(&root),
        }
    }

    /// Read `dir/fingerprint.json`: None when there is none (runs from before it was
    /// recorded), an error when it is there but unreadable.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::error::IoError::new(path, e).into()),
            Ok(b) => serde_json::from_slice(&b).map(Some).with_context(|| path.display()),
        }
    }

    /// Write `dir/fingerprint.json` (atomically).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        crate::checkpoint::write_atomic(&dir.join(FILE), &json).map_err(crate::error::Error::other)
    }

    /// What differs from `now` (`self` is the recorded one), one line per difference:
    /// `train.epochs: 3 → 5`. Empty when they match.
    pub fn changes(&self, now: &RunFingerprint) -> Vec<String> {
        let mut out = self.training_changes(now);
        diff_values("", &self.evaluation, &now.evaluation, &mut out);
        out
    }

    /// The differences that change what training computes (all but the evaluation part).
    pub fn training_changes(&self, now: &RunFingerprint) -> Vec<String> {
        let mut out = vec![];
        if self.npe_version != now.npe_version {
            out.push(format!("npe version: {} → {}", self.npe_version, now.npe_version));
        }
        if self.backend != now.backend {
            out.push(format!("backend: {} → {}", self.backend, now.backend));
        }
        let comparable = |v: &Value| {
            let mut v = v.clone();
            if let Some(d) = v.get_mut("data") {
                *d = comparable_data(d);
            }
            v
        };
        diff_values("", &comparable(&self.pipeline), &comparable(&now.pipeline), &mut out);
        match (&self.data, &now.data) {
            (Some(a), Some(b)) if a != b => out.push(format!(
                "data files under {}: {} files, {} bytes (listing {}) → {} files, {} bytes (listing {}){}",
                b.root,
                a.files,
                a.bytes,
                a.listing,
                b.files,
                b.bytes,
                b.listing,
                if a.root != b.root { format!(" (root was {})", a.root) } else { String::new() }
            )),
            (Some(a), None) => out.push(format!("data: files under {} → none found", a.root)),
            (None, Some(b)) => out.push(format!("data: generated → files under {}", b.root)),
            _ => {}
        }
        out
    }
}

/// A recorded `data:` section without the options sections of sources other than the chosen
/// one that hold only defaults: runs recorded before the sources became one module each wrote
/// every source's options (`synthetic`, `seg_digits`, `stare`) whatever the source, and
/// differ from today's records only by those.
fn comparable_data(data: &Value) -> Value {
    let mut data = data.clone();
    let Some(m) = data.as_object_mut() else { return data };
    let chosen = m.get("source").and_then(Value::as_str).unwrap_or_default().to_string();
    let placeholder = crate::spec::DataSpec::placeholder();
    m.retain(|k, v| {
        let Some(src) = crate::data::source::find(k).filter(|s| s.has_options() && k != &chosen) else { return true };
        !src.options(&placeholder).is_ok_and(|d| same(&d, v))
    });
    data
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 80 { format!("{}…", s.chars().take(80).collect::<String>()) } else { s }
}

/// Equal values, numbers up to a few ulps: serde_json's default float parser is not correctly
/// rounded, so a number read back from `fingerprint.json` may differ from the one written in its
/// last bit (`0.20229999721050262` read as `…265`), which is no change of settings.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) if x.is_f64() || y.is_f64() => {
                (p - q).abs() <= 8.0 * f64::EPSILON * p.abs().max(q.abs())
            }
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same(p, q)))
        }
        _ => a == b,
    }
}

/// Leaf-by-leaf differences of two JSON values, as `path: old → new`.
fn diff_values(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff_values(&join(k), p, q, out),
                    (Some(p), None) => out.push(format!("{}: {} → (removed)", join(k), short(p))),
                    (None, Some(q)) => out.push(format!("{}: (none) → {}", join(k), short(q))),
                    (None, None) => {}
                }
            }
        }
        _ if !same(a, b) => {
            out.push(format!("{}: {} → {}", if path.is_empty() { "(all)" } else { path }, short(a), short(b)))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_read_back_a_few_ulps_off_is_no_change() {
        let a = serde_json::json!({"std": [0.20229999721050262, 0.5], "n": 3});
        let b = serde_json::json!({"std": [0.20229999721050265, 0.5], "n": 3});
        let mut out = vec![];
        diff_values("", &a, &b, &mut out);
        assert!(out.is_empty(), "{out:?}");
        let c = serde_json::json!({"std": [0.2023, 0.5], "n": 4});
        diff_values("", &a, &c, &mut out);
        assert_eq!(out.len(), 2, "a real change still shows: {out:?}");
    }

    #[test]
    fn changes_name_each_leaf_that_differs() {
        let fp = |epochs: u64, lr: f64| RunFingerprint {
            npe_version: "0.1.0".into(),
            backend: "tch".into(),
            pipeline: json!({"train": {"epochs": epochs, "optimizer": {"lr": lr}}, "nodes": {"a": "Linear"}}),
            evaluation: json!({"nodes": {"acc": "Accuracy"}}),
            data: None,
        };
        assert!(fp(3, 0.1).changes(&fp(3, 0.1)).is_empty());
        assert_eq!(fp(3, 0.1).changes(&fp(5, 0.5)), ["train.epochs: 3 → 5", "train.optimizer.lr: 0.1 → 0.5"]);
        let mut other = fp(3, 0.1);
        other.backend = "burn".into();
        other.pipeline["nodes"]["b"] = json!("Pem");
        assert_eq!(fp(3, 0.1).changes(&other), ["backend: tch → burn", "nodes.b: (none) → Pem"]);
        let mut evaluated = fp(3, 0.1);
        evaluated.evaluation["nodes"]["posthoc"] = json!("PosthocLa");
        assert_eq!(fp(3, 0.1).changes(&evaluated), ["nodes.posthoc: (none) → PosthocLa"]);
        assert!(fp(3, 0.1).training_changes(&evaluated).is_empty(), "an added adjuster changes no training");
    }

    #[test]
    fn the_data_identity_follows_names_and_sizes_not_times() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x.jpg"), b"12345").unwrap();
        std::fs::write(dir.path().join("y.jpg"), b"12").unwrap();
        let one = data_identity(dir.path()).unwrap();
        assert_eq!((one.files, one.bytes), (2, 7));
        std::fs::write(dir.path().join("y.jpg"), b"21").unwrap();
        assert_eq!(data_identity(dir.path()).unwrap(), one, "same names and sizes");
        std::fs::write(dir.path().join("y.jpg"), b"213").unwrap();
        assert_ne!(data_identity(dir.path()).unwrap().listing, one.listing);
        assert!(data_identity(Path::new("")).is_none());
    }

    #[test]
    fn records_from_before_sources_were_modules_are_not_stale() {
        // The data section of a run recorded by main before the change (every source's options,
        // whatever the source), and today's record of the same pipeline.
        let legacy = json!({"source": "image_folder", "root": "/tmp/cifar10", "num_classes": 10,
            "seg_digits": {"canvas": 64, "items": [2, 5], "items_from": "fashion_mnist", "test_images": 500, "threshold": 96, "train_images": 2000},
            "stare": {"annotator": "ah", "train_images": 10},
            "synthetic": {"channels": 1, "classes": 10, "noise": 1.0, "per_class": 1000, "size": 12, "test_per_class": 200}});
        let today = json!({"source": "image_folder", "root": "/tmp/cifar10", "num_classes": 10});
        let fp = |data: &Value| RunFingerprint {
            npe_version: "0.1.0".into(),
            backend: "tch".into(),
            pipeline: json!({"data": data}),
            evaluation: json!({}),
            data: None,
        };
        assert!(fp(&legacy).changes(&fp(&today)).is_empty(), "{:?}", fp(&legacy).changes(&fp(&today)));
        // A non-default section of another source, or a change of the chosen source's options,
        // still shows.
        let mut odd = legacy.clone();
        odd["stare"]["annotator"] = json!("vk");
        assert_eq!(
            fp(&odd).changes(&fp(&today)),
            ["data.stare: {\"annotator\":\"vk\",\"train_images\":10} → (removed)"]
        );
        let stare = |n: u64| json!({"source": "stare", "stare": {"annotator": "ah", "train_images": n}});
        assert_eq!(fp(&stare(10)).changes(&fp(&stare(12))), ["data.stare.train_images: 10 → 12"]);
        let a = TrainedOn { data_spec: legacy, data: None };
        assert!(a.differences(&TrainedOn { data_spec: today, data: None }).is_empty());
    }
}
