//! Checkpoints and exported models as safetensors, written atomically (temporary file, fsync,
//! rename, fsync of the folder), so a crash never leaves a half-written file under the final name.
//!
//! A checkpoint holds parameters and buffers under their model names (PyTorch-loadable with
//! `safetensors.torch.load_file`), the optimiser's momentum buffers under
//! `__optimizer__.momentum.<name>`, and string metadata saying where training stood.

use crate::types::{NamedTensor, ParamSpec};
use safetensors::tensor::Dtype;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Tensor-name prefix of optimiser state.
pub const OPTIM_PREFIX: &str = "__optimizer__.momentum.";
/// Format tag written into every file.
pub const FORMAT: &str = "npe-checkpoint-1";

/// Where training stood when a checkpoint was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// Epoch being trained (0-based); equal to the number of epochs when done.
    pub epoch: usize,
    /// Next batch index within `epoch`.
    pub batch: usize,
    /// Optimisation steps taken so far.
    pub global_step: u64,
}

/// A checkpoint in memory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Pipeline name.
    pub pipeline: String,
    /// Fingerprint of the parameter layout (names and shapes).
    pub fingerprint: String,
    /// Backend that wrote it.
    pub backend: String,
    /// Training position.
    pub position: Position,
    /// Parameters and buffers.
    pub params: Vec<NamedTensor>,
    /// Optimiser state (SGD momentum, AdamW moments), named after the parameters.
    pub optimizer: Vec<NamedTensor>,
}

/// Problems reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// Not a readable safetensors file, or not ours.
    #[error("{path}: not a valid npe checkpoint: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A stable fingerprint of the model's parameter names and shapes.
pub fn fingerprint(specs: &[ParamSpec]) -> String {
    let mut s = String::new();
    for p in specs {
        s.push_str(&p.name);
        s.push_str(&format!("{:?};", p.shape));
    }
    format!("{:016x}", crate::rng::hash_str(&s))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_path_buf(), source }
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Serialize f32 tensors and string metadata in the safetensors format with sorted keys, so
/// equal contents give equal bytes (the safetensors crate orders metadata by a HashMap).
/// Layout: u64 little-endian header length, JSON header padded with spaces to 8 bytes, data.
fn serialize(tensors: &[(String, &NamedTensor)], meta: HashMap<String, String>) -> Vec<u8> {
    let mut sorted: Vec<&(String, &NamedTensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    let meta: std::collections::BTreeMap<String, String> = meta.into_iter().collect();
    header.insert("__metadata__".into(), serde_json::to_value(meta).expect("string map"));
    let mut offset = 0usize;
    for (name, t) in &sorted {
        let len = t.data.len() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    // serde_json's Map keeps keys sorted (no preserve_order feature).
    let mut json = serde_json::to_vec(&serde_json::Value::Object(header)).expect("header serializes");
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for (_, t) in sorted {
        for v in &t.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

impl Checkpoint {
    fn meta(&self, kind: &str) -> HashMap<String, String> {
        HashMap::from([
            ("format".into(), FORMAT.into()),
            ("kind".into(), kind.into()),
            ("pipeline".into(), self.pipeline.clone()),
            ("fingerprint".into(), self.fingerprint.clone()),
            ("backend".into(), self.backend.clone()),
            ("epoch".into(), self.position.epoch.to_string()),
            ("batch".into(), self.position.batch.to_string()),
            ("global_step".into(), self.position.global_step.to_string()),
        ])
    }

    /// Write the full training state.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let mut all: Vec<(String, &NamedTensor)> = self.params.iter().map(|t| (t.name.clone(), t)).collect();
        all.extend(self.optimizer.iter().map(|t| (format!("{OPTIM_PREFIX}{}", t.name), t)));
        write_atomic(path, &serialize(&all, self.meta("checkpoint")))
    }

    /// Write parameters and buffers only (a model to evaluate or share).
    pub fn save_model(&self, path: &Path) -> Result<(), CheckpointError> {
        let all: Vec<(String, &NamedTensor)> = self.params.iter().map(|t| (t.name.clone(), t)).collect();
        write_atomic(path, &serialize(&all, self.meta("model")))
    }

    /// Read a checkpoint or model file.
    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let invalid = |m: String| CheckpointError::Invalid { path: path.to_path_buf(), message: m };
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| invalid(e.to_string()))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| invalid(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
        let num = |k: &str| get(k).parse::<u64>().unwrap_or(0);
        let mut params = vec![];
        let mut optimizer = vec![];
        let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
        names.sort();
        for name in names {
            let view = st.tensor(&name).map_err(|e| invalid(e.to_string()))?;
            if view.dtype() != Dtype::F32 {
                return Err(invalid(format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
            }
            let data: Vec<f32> =
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            match name.strip_prefix(OPTIM_PREFIX) {
                Some(p) => optimizer.push(NamedTensor { name: p.to_string(), shape: view.shape().to_vec(), data }),
                None => params.push(NamedTensor { name, shape: view.shape().to_vec(), data }),
            }
        }
        Ok(Checkpoint {
            pipeline: get("pipeline"),
            fingerprint: get("fingerprint"),
            backend: get("backend"),
            position: Position {
                epoch: num("epoch") as usize,
                batch: num("batch") as usize,
                global_step: num("global_step"),
            },
            params,
            optimizer,
        })
    }
}

/// File name of the checkpoint at a position.
pub fn file_name(p: &Position) -> String {
    if p.batch == 0 {
        format!("epoch-{:04}.safetensors", p.epoch)
    } else {
        format!("epoch-{:04}-batch-{:06}.safetensors", p.epoch, p.batch)
    }
}

/// The checkpoint files in `dir`, oldest first (by the position in their names).
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("epoch-") && n.ends_with(".safetensors"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_atomic_names() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoint {
            pipeline: "p".into(),
            fingerprint: "f".into(),
            backend: "burn".into(),
            position: Position { epoch: 2, batch: 5, global_step: 77 },
            params: vec![NamedTensor { name: "a.weight".into(), shape: vec![2, 2], data: vec![1.0, -2.0, 3.5, 0.0] }],
            optimizer: vec![NamedTensor { name: "a.weight".into(), shape: vec![2, 2], data: vec![0.1; 4] }],
        };
        let path = dir.path().join(file_name(&ck.position));
        ck.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(
            (back.position, back.params, back.optimizer),
            (ck.position.clone(), ck.params.clone(), ck.optimizer.clone())
        );
        assert_eq!(list(dir.path()), vec![path.clone()]);
        // No temporary file is left behind; equal contents give equal bytes.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let again = dir.path().join("again.safetensors");
        ck.save(&again).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap());
        std::fs::remove_file(&again).unwrap();
        // A truncated file is reported, not misread.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(Checkpoint::load(&path).unwrap_err().to_string().contains("not a valid npe checkpoint"));
    }
}
