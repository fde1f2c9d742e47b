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
/// Format tag written into every file (version 3: a checksum of the metadata too; version 2:
/// per-tensor checksums, seed, epoch-loss state).
pub const FORMAT: &str = "npe-checkpoint-3";
/// Formats this version reads (version 1 files have no checksums, version 2 files none of
/// their metadata).
const FORMATS: [&str; 3] = ["npe-checkpoint-1", "npe-checkpoint-2", FORMAT];
/// Metadata key of the metadata's own checksum.
const META_CRC: &str = "meta_crc32";

/// CRC-32 of every metadata entry but [`META_CRC`], in key order.
fn meta_crc32<'a>(meta: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut sorted: Vec<(&String, &String)> = meta.into_iter().filter(|(k, _)| *k != META_CRC).collect();
    sorted.sort();
    let mut crc = flate2::Crc::new();
    for (k, v) in sorted {
        crc.update(k.as_bytes());
        crc.update(b"\0");
        crc.update(v.as_bytes());
        crc.update(b"\n");
    }
    format!("{:08x}", crc.sum())
}

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
    /// Seed of the run that wrote it (None in version 1 files).
    pub seed: Option<u64>,
    /// Loss sums and steps of the epoch in progress (mid-epoch checkpoints), so a resumed
    /// epoch's mean covers all its steps.
    pub epoch_losses: Option<(std::collections::BTreeMap<String, f64>, usize)>,
    /// What it was trained on (JSON: the data section and the data files' identity, see
    /// `train::fingerprint::TrainedOn`), so evaluating it on other data can be noticed; None in
    /// files written before it was recorded.
    pub trained_on: Option<String>,
}

/// Parameter magnitude taken as divergence: no trained network has weights this large, and
/// float32 products of such weights overflow to infinity within a few layers.
pub const DIVERGED_MAGNITUDE: f32 = 1e12;

/// Problems reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// A tensor holds NaN, infinity or a magnitude past [`DIVERGED_MAGNITUDE`]: such a model
    /// is never written.
    #[error("refusing to write {path}: tensor `{tensor}` holds {what} (the model diverged)")]
    NonFinite {
        /// File not written.
        path: PathBuf,
        /// The first diverged tensor.
        tensor: String,
        /// What it holds.
        what: String,
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
    move |source| CheckpointError::Io(crate::error::IoError::new(path, source))
}

/// Test hook of the fault-injection test (`tests/fault_injection.rs`): with
/// `NPETEST_PAUSE_IN_WRITE_MS` set, every atomic write pauses between writing its temporary
/// file and renaming it, so a test can kill the process inside a checkpoint write.
fn test_pause() {
    if let Some(ms) = std::env::var("NPETEST_PAUSE_IN_WRITE_MS").ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Remove temporary files that a killed process left in `dir` (`.NAME.tmp-PID`); call only
/// while holding the folder (no other writer).
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        test_pause();
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if written.is_err() {
        // Disk full, permissions: never leave the partial file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Serialize f32 tensors and string metadata in the safetensors format with sorted keys, so
/// equal contents give equal bytes (the safetensors crate orders metadata by a HashMap).
/// Layout: u64 little-endian header length, JSON header padded with spaces to 8 bytes, data.
fn serialize(tensors: &[(String, &NamedTensor)], mut meta: HashMap<String, String>) -> Vec<u8> {
    let mut sorted: Vec<&(String, &NamedTensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let sums: std::collections::BTreeMap<&str, String> =
        sorted.iter().map(|(n, t)| (n.as_str(), format!("{:08x}", crc32(&t.data)))).collect();
    meta.insert("crc32".into(), serde_json::to_string(&sums).expect("string map"));
    let meta_sum = meta_crc32(&meta);
    meta.insert(META_CRC.into(), meta_sum);
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

/// CRC-32 of a tensor's little-endian bytes.
fn crc32(data: &[f32]) -> u32 {
    let mut crc = flate2::Crc::new();
    for v in data {
        crc.update(&v.to_le_bytes());
    }
    crc.sum()
}

impl Checkpoint {
    fn meta(&self, kind: &str) -> HashMap<String, String> {
        let mut m = HashMap::from([
            ("format".into(), FORMAT.into()),
            ("kind".into(), kind.into()),
            ("pipeline".into(), self.pipeline.clone()),
            ("fingerprint".into(), self.fingerprint.clone()),
            ("backend".into(), self.backend.clone()),
            ("epoch".into(), self.position.epoch.to_string()),
            ("batch".into(), self.position.batch.to_string()),
            ("global_step".into(), self.position.global_step.to_string()),
        ]);
        if let Some(seed) = self.seed {
            m.insert("seed".into(), seed.to_string());
        }
        if let Some(t) = &self.trained_on {
            m.insert("trained_on".into(), t.clone());
        }
        if let Some((sums, steps)) = &self.epoch_losses {
            m.insert("epoch_loss_sums".into(), serde_json::to_string(sums).expect("numbers"));
            m.insert("epoch_steps".into(), steps.to_string());
        }
        m
    }

    /// Error unless every value is finite and below [`DIVERGED_MAGNITUDE`].
    fn check_finite<'a>(
        path: &Path,
        tensors: impl IntoIterator<Item = &'a NamedTensor>,
    ) -> Result<(), CheckpointError> {
        for t in tensors {
            let what = if t.data.iter().any(|v| !v.is_finite()) {
                "NaN or infinite values".to_string()
            } else {
                let big = t.data.iter().fold(0f32, |m, v| m.max(v.abs()));
                if big <= DIVERGED_MAGNITUDE {
                    continue;
                }
                format!(
                    "values of magnitude {big:.1e} (above {DIVERGED_MAGNITUDE:.0e}, where float32 activations overflow)"
                )
            };
            return Err(CheckpointError::NonFinite { path: path.to_path_buf(), tensor: t.name.clone(), what });
        }
        Ok(())
    }

    /// Write the full training state.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let mut all: Vec<(String, &NamedTensor)> = self.params.iter().map(|t| (t.name.clone(), t)).collect();
        all.extend(self.optimizer.iter().map(|t| (format!("{OPTIM_PREFIX}{}", t.name), t)));
        Self::check_finite(path, all.iter().map(|(_, t)| *t))?;
        write_atomic(path, &serialize(&all, self.meta("checkpoint")))
    }

    /// Write parameters and buffers only (a model to evaluate or share).
    pub fn save_model(&self, path: &Path) -> Result<(), CheckpointError> {
        let all: Vec<(String, &NamedTensor)> = self.params.iter().map(|t| (t.name.clone(), t)).collect();
        Self::check_finite(path, &self.params)?;
        write_atomic(path, &serialize(&all, self.meta("model")))
    }

    /// Read a checkpoint or model file.
    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        Self::from_bytes(&bytes, path)
    }

    /// Read a checkpoint or model from its bytes (`path` names it in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
        let invalid = |m: String| CheckpointError::Invalid { path: path.to_path_buf(), message: m };
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| invalid(e.to_string()))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| invalid(e.to_string()))?;
        let meta = Meta::read(header.metadata().clone().unwrap_or_default(), path)?;
        let sums = meta.tensor_sums()?;
        let (params, optimizer) = read_tensors(&st, sums.as_ref(), &invalid)?;
        if let Some(sums) = &sums {
            let present: std::collections::BTreeSet<String> = params
                .iter()
                .map(|t| t.name.clone())
                .chain(optimizer.iter().map(|t| format!("{OPTIM_PREFIX}{}", t.name)))
                .collect();
            let missing: Vec<&str> = sums.keys().filter(|k| !present.contains(*k)).map(String::as_str).collect();
            if !missing.is_empty() {
                return Err(invalid(format!("tensors recorded but missing: {}", missing.join(", "))));
            }
        }
        Ok(Checkpoint {
            pipeline: meta.get("pipeline"),
            fingerprint: meta.get("fingerprint"),
            backend: meta.get("backend"),
            position: Position {
                epoch: meta.num("epoch")? as usize,
                batch: meta.num("batch")? as usize,
                global_step: meta.num("global_step")?,
            },
            params,
            optimizer,
            seed: meta.map.get("seed").map(|_| meta.num("seed")).transpose()?,
            epoch_losses: meta.epoch_losses()?,
            trained_on: meta.map.get("trained_on").cloned(),
        })
    }
}

/// Per-tensor CRC32s by tensor name, as recorded in the metadata.
type TensorSums = std::collections::BTreeMap<String, String>;

/// A checkpoint's string metadata, its format tag and checksum verified.
struct Meta<'a> {
    map: std::collections::HashMap<String, String>,
    format: String,
    path: &'a Path,
}

impl<'a> Meta<'a> {
    /// Check the format tag and (for the current format, which must have one) the metadata checksum.
    fn read(map: std::collections::HashMap<String, String>, path: &'a Path) -> Result<Self, CheckpointError> {
        let format = map.get("format").cloned().unwrap_or_default();
        let meta = Meta { map, format, path };
        if !FORMATS.contains(&meta.format.as_str()) {
            let m = format!("format tag `{}` is not one this npe reads ({})", meta.format, FORMATS.join(", "));
            return Err(meta.invalid(m));
        }
        // Where training stood (epoch, batch, step, seed), and the tensor checksums themselves.
        match meta.map.get(META_CRC) {
            Some(want) => {
                let got = meta_crc32(&meta.map);
                if *want != got {
                    return Err(meta.invalid(format!(
                        "its metadata is damaged (checksum {got}, recorded {want}): where training stood cannot be trusted"
                    )));
                }
            }
            None if meta.format == FORMAT => {
                return Err(meta.invalid(format!("metadata `{META_CRC}` (the metadata's checksum) is missing")));
            }
            None => {}
        }
        Ok(meta)
    }

    fn invalid(&self, message: String) -> CheckpointError {
        CheckpointError::Invalid { path: self.path.to_path_buf(), message }
    }

    /// A metadata string, empty when absent.
    fn get(&self, k: &str) -> String {
        self.map.get(k).cloned().unwrap_or_default()
    }

    /// A whole-number metadata field.
    fn num(&self, k: &str) -> Result<u64, CheckpointError> {
        let v = self.get(k);
        v.parse::<u64>().map_err(|_| self.invalid(format!("metadata `{k}` is `{v}`, not a whole number")))
    }

    /// The tensor checksums (required in the current format; older files may lack them).
    fn tensor_sums(&self) -> Result<Option<TensorSums>, CheckpointError> {
        match self.map.get("crc32") {
            Some(j) => {
                Ok(Some(serde_json::from_str(j).map_err(|_| self.invalid("metadata `crc32` is unreadable".into()))?))
            }
            None if self.format == FORMAT => Err(self.invalid("metadata `crc32` (tensor checksums) is missing".into())),
            None => Ok(None),
        }
    }

    /// The running loss sums of a mid-epoch checkpoint, with the steps they cover.
    fn epoch_losses(&self) -> Result<Option<(std::collections::BTreeMap<String, f64>, usize)>, CheckpointError> {
        match (self.map.get("epoch_loss_sums"), self.map.get("epoch_steps")) {
            (Some(s), Some(_)) => Ok(Some((
                serde_json::from_str(s).map_err(|_| self.invalid("metadata `epoch_loss_sums` is unreadable".into()))?,
                self.num("epoch_steps")? as usize,
            ))),
            _ => Ok(None),
        }
    }
}

/// Every tensor, checked (F32, checksum, finite), split into parameters and optimiser state.
fn read_tensors(
    st: &safetensors::SafeTensors,
    sums: Option<&TensorSums>,
    invalid: &dyn Fn(String) -> CheckpointError,
) -> Result<(Vec<NamedTensor>, Vec<NamedTensor>), CheckpointError> {
    let mut params = vec![];
    let mut optimizer = vec![];
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    for name in names {
        let view = st.tensor(&name).map_err(|e| invalid(e.to_string()))?;
        if view.dtype() != Dtype::F32 {
            return Err(invalid(format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
        }
        let data: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        if let Some(sums) = sums {
            let want = sums.get(&name).ok_or_else(|| invalid(format!("tensor `{name}` has no checksum")))?;
            let got = format!("{:08x}", crc32(&data));
            if *want != got {
                return Err(invalid(format!("tensor `{name}` is damaged (checksum {got}, recorded {want})")));
            }
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(invalid(format!("tensor `{name}` holds NaN or infinite values")));
        }
        match name.strip_prefix(OPTIM_PREFIX) {
            Some(p) => optimizer.push(NamedTensor { name: p.to_string(), shape: view.shape().to_vec(), data }),
            None => params.push(NamedTensor { name, shape: view.shape().to_vec(), data }),
        }
    }
    Ok((params, optimizer))
}

/// File name of the checkpoint at a position.
pub fn file_name(p: &Position) -> String {
    if p.batch == 0 {
        format!("epoch-{:04}.safetensors", p.epoch)
    } else {
        format!("epoch-{:04}-batch-{:06}.safetensors", p.epoch, p.batch)
    }
}

/// The (epoch, batch) in a checkpoint file name (`epoch-NNNN[-batch-NNNNNN].safetensors`).
pub fn parse_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("epoch-")?.strip_suffix(".safetensors")?;
    match rest.split_once("-batch-") {
        Some((e, b)) => Some((e.parse().ok()?, b.parse().ok()?)),
        None => Some((rest.parse().ok()?, 0)),
    }
}

/// The checkpoint files in `dir`, oldest first by the (epoch, batch) parsed from their names
/// (never by text: `epoch-0003-batch-000081` comes after `epoch-0003`, and epoch 10000 after 9999).
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.file_name().and_then(|n| n.to_str()).and_then(parse_name).is_some())
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|p| p.file_name().and_then(|n| n.to_str()).and_then(parse_name));
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
            seed: Some(7),
            epoch_losses: Some((std::collections::BTreeMap::from([("total".into(), 1.5)]), 3)),
            trained_on: Some("{\"data\": 1}".into()),
        };
        let path = dir.path().join(file_name(&ck.position));
        ck.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(
            (back.position, back.params, back.optimizer, back.seed, back.epoch_losses, back.trained_on),
            (
                ck.position.clone(),
                ck.params.clone(),
                ck.optimizer.clone(),
                ck.seed,
                ck.epoch_losses.clone(),
                ck.trained_on.clone()
            )
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

    fn saved(dir: &Path) -> (PathBuf, Vec<u8>) {
        let ck = Checkpoint {
            pipeline: "p".into(),
            fingerprint: "f".into(),
            backend: "burn".into(),
            position: Position { epoch: 4, batch: 0, global_step: 40 },
            params: vec![NamedTensor { name: "w".into(), shape: vec![3], data: vec![1.0, 2.0, 3.0] }],
            optimizer: vec![NamedTensor { name: "w".into(), shape: vec![3], data: vec![0.5; 3] }],
            seed: Some(1),
            epoch_losses: None,
            trained_on: None,
        };
        let path = dir.join("epoch-0004.safetensors");
        ck.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        (path, bytes)
    }

    fn err(path: &Path) -> String {
        Checkpoint::load(path).unwrap_err().to_string()
    }

    #[test]
    fn a_flipped_byte_in_any_tensor_is_found_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = saved(dir.path());
        // The last 12 bytes are the momentum buffer, the 12 before them the weight.
        // Data is in name order: the momentum buffer (`__optimizer__…`) first, then the weight.
        for (at, name) in [(bytes.len() - 5, "w"), (bytes.len() - 17, "__optimizer__.momentum.w")] {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            std::fs::write(&path, &b).unwrap();
            let e = err(&path);
            assert!(e.contains(&format!("tensor `{name}` is damaged")), "{e}");
        }
    }

    #[test]
    fn edited_metadata_and_removed_tensors_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = saved(dir.path());
        for (key, value, want) in [
            ("global_step", Some("3x"), "metadata `global_step` is `3x`"),
            ("epoch", None, "metadata `epoch` is ``"),
            ("format", Some("npe-checkpoint-9"), "format tag `npe-checkpoint-9`"),
        ] {
            let edit = |h: &mut serde_json::Value| match value {
                Some(v) => h["__metadata__"][key] = serde_json::Value::String(v.into()),
                None => drop(h["__metadata__"].as_object_mut().unwrap().remove(key)),
            };
            // Edited by hand: the metadata checksum catches it.
            std::fs::write(&path, edit_header(&bytes, edit)).unwrap();
            let e = err(&path);
            assert!(e.contains("its metadata is damaged") || key == "format", "{key} → {value:?}: {e}");
            // Edited with the checksum recomputed: the value checks still hold.
            std::fs::write(
                &path,
                edit_header(&bytes, |h| {
                    edit(h);
                    reseal(h)
                }),
            )
            .unwrap();
            let e = err(&path);
            assert!(e.contains(want), "{key} → {value:?}: {e}");
        }
        // A tensor removed from the file (header and data) while the checksum record stays.
        let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + hlen]).unwrap();
        let ck = Checkpoint::load(&{
            std::fs::write(&path, &bytes).unwrap();
            path.clone()
        })
        .unwrap();
        let mut meta = ck.meta("checkpoint");
        meta.insert("crc32".into(), header["__metadata__"]["crc32"].as_str().unwrap().to_string());
        std::fs::write(&path, serialize_with_sums(&[("w".into(), &ck.params[0])], meta)).unwrap();
        let e = err(&path);
        assert!(e.contains("missing: __optimizer__.momentum.w"), "{e}");
    }

    /// The file with its JSON header changed by `f` (lengths fixed up).
    fn edit_header(bytes: &[u8], f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + hlen]).unwrap();
        f(&mut header);
        let mut json = serde_json::to_vec(&header).unwrap();
        while json.len() % 8 != 0 {
            json.push(b' ');
        }
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&json);
        out.extend_from_slice(&bytes[8 + hlen..]);
        out
    }

    /// `serialize`, keeping a given `crc32` entry (to fake a file that lost a tensor).
    fn serialize_with_sums(tensors: &[(String, &NamedTensor)], meta: HashMap<String, String>) -> Vec<u8> {
        let sums = meta["crc32"].clone();
        edit_header(&serialize(tensors, meta), |h| {
            h["__metadata__"]["crc32"] = serde_json::Value::String(sums);
            reseal(h)
        })
    }

    /// Recompute the metadata checksum of an edited header (what a careful forger would do).
    fn reseal(h: &mut serde_json::Value) {
        let meta: HashMap<String, String> = serde_json::from_value(h["__metadata__"].clone()).unwrap();
        h["__metadata__"][META_CRC] = serde_json::Value::String(meta_crc32(&meta));
    }

    #[test]
    fn a_flipped_bit_in_where_training_stood_is_caught_and_version_2_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = saved(dir.path());
        let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + hlen]).unwrap();
        for key in ["\"epoch\":\"", "\"batch\":\"", "\"global_step\":\""] {
            let at = 8 + header.find(key).unwrap() + key.len();
            let mut b = bytes.clone();
            b[at] ^= 0x01; // a digit becomes its neighbour ('3' ↔ '2')
            std::fs::write(&path, &b).unwrap();
            let e = err(&path);
            assert!(e.contains("its metadata is damaged"), "{key}: {e}");
        }
        // What today's main writes (version 2: no metadata checksum) still loads.
        let v2 = edit_header(&bytes, |h| {
            h["__metadata__"]["format"] = serde_json::Value::String("npe-checkpoint-2".into());
            h["__metadata__"].as_object_mut().unwrap().remove(META_CRC);
        });
        std::fs::write(&path, &v2).unwrap();
        let ck = Checkpoint::load(&path).unwrap();
        assert_eq!(ck.params[0].name, "w");
        // A version 3 file that lost its metadata checksum is refused.
        let lost = edit_header(&bytes, |h| drop(h["__metadata__"].as_object_mut().unwrap().remove(META_CRC)));
        std::fs::write(&path, &lost).unwrap();
        assert!(err(&path).contains("`meta_crc32`"), "{}", err(&path));
    }

    #[test]
    fn non_finite_models_are_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut ck = Checkpoint::load(&saved(dir.path()).0).unwrap();
        ck.params[0].data[1] = f32::NAN;
        let path = dir.path().join("bad.safetensors");
        let e = ck.save(&path).unwrap_err().to_string();
        assert!(e.contains("tensor `w` holds NaN"), "{e}");
        assert!(!path.exists());
        assert!(ck.save_model(&path).is_err() && !path.exists());
    }

    #[test]
    fn finite_but_exploded_models_are_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut ck = Checkpoint::load(&saved(dir.path()).0).unwrap();
        ck.params[0].data[1] = 3e29;
        let path = dir.path().join("bad.safetensors");
        let e = ck.save(&path).unwrap_err().to_string();
        assert!(e.contains("tensor `w` holds values of magnitude 3.0e29"), "{e}");
        assert!(!path.exists());
        ck.params[0].data[1] = 1e6;
        ck.save(&path).unwrap();
    }

    #[test]
    fn checkpoints_sort_by_position_not_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["epoch-0003-batch-000081", "epoch-0003", "epoch-10000", "epoch-9999", "epoch-0002-batch-000001"] {
            std::fs::write(dir.path().join(format!("{n}.safetensors")), b"x").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let names: Vec<String> =
            list(dir.path()).iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            ["epoch-0002-batch-000001", "epoch-0003", "epoch-0003-batch-000081", "epoch-9999", "epoch-10000"]
        );
    }
}
