//! What rank 0 writes into a run's folder while it trains: the folder itself (refusing one that
//! holds another run, clearing a killed run's temporaries), `metrics.jsonl` with its
//! TensorBoard twin, and the pruning of old checkpoints. The other ranks hold no writer.

use super::{TrainError, io_err};
use crate::checkpoint;
use crate::report::{EpochRecord, tensorboard};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The writer of one run's folder (rank 0 only).
pub(super) struct RunWriter {
    out: PathBuf,
    metrics: PathBuf,
    tensorboard: Option<tensorboard::EventWriter>,
}

impl RunWriter {
    /// Open `out` for a run: create it and its `checkpoints/`, refuse a folder that holds
    /// another run's checkpoints unless resuming, and remove what a killed run was writing.
    pub fn open(out: &Path, resume: bool) -> Result<RunWriter, TrainError> {
        let ck_dir = out.join("checkpoints");
        std::fs::create_dir_all(&ck_dir).map_err(io_err(&ck_dir))?;
        super::check_out(out, resume)?;
        checkpoint::remove_stale_temporaries(&ck_dir);
        checkpoint::remove_stale_temporaries(out);
        Ok(RunWriter { out: out.to_path_buf(), metrics: out.join("metrics.jsonl"), tensorboard: None })
    }

    /// Ready the records for training from `epoch`: later records (written after the
    /// checkpoint resumed from) are dropped; TensorBoard events start if asked for.
    pub fn start(&mut self, epoch: usize, tensorboard: bool) -> Result<(), TrainError> {
        if tensorboard {
            let dir = self.out.join("tensorboard");
            self.tensorboard = Some(tensorboard::EventWriter::create(&dir).map_err(io_err(&dir))?);
        }
        keep_records_up_to(&self.metrics, epoch)
    }

    /// Append an epoch's record to `metrics.jsonl` (synced) and to the TensorBoard events.
    pub fn record(&self, record: &EpochRecord) -> Result<(), TrainError> {
        let path = &self.metrics;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io_err(path))?;
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        f.write_all(&line).map_err(io_err(path))?;
        f.sync_data().map_err(io_err(path))?;
        if let Some(tb) = &self.tensorboard {
            tb.epoch(record).map_err(io_err(&self.out.join("tensorboard")))?;
        }
        Ok(())
    }

    /// Every record of `metrics.jsonl` (for plots and totals), skipping unreadable lines.
    pub fn records(&self) -> Vec<EpochRecord> {
        std::fs::read_to_string(&self.metrics)
            .map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
            .unwrap_or_default()
    }
}

/// Drop `metrics.jsonl` lines of epochs after `epoch` (written after the checkpoint we resume from).
fn keep_records_up_to(path: &Path, epoch: usize) -> Result<(), TrainError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["epoch"].as_u64())
                .is_some_and(|e| e as usize <= epoch)
        })
        .collect();
    let mut s = kept.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    checkpoint::write_atomic(path, s.as_bytes())?;
    Ok(())
}

/// Keep the newest `keep` epoch checkpoints (and never `current`); mid-epoch ones older than
/// `current` go too.
pub(super) fn prune(dir: &Path, keep: usize, current: &Path) {
    let all = checkpoint::list(dir);
    let n = all.len();
    for (i, p) in all.iter().enumerate() {
        if p != current && i + keep < n {
            let _ = std::fs::remove_file(p);
        }
    }
}
