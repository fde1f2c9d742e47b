//! What inference needs from training besides the weights, stored beside the model as
//! `calibration.json`: the training class counts (post-hoc LA with counts) and each adjuster's
//! calibration from unlabelled training images (`npe_la` read-outs and `scale: auto`,
//! `posthoc_la` `prior: predicted`), with where they came from. `npe predict` and exports need
//! no training data with it. Runs written before it existed fall back to their `summary.json`,
//! which holds the same numbers from the final evaluation.

use crate::error::{Context, Result};
use crate::report::{EvalReport, Summary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// File name in a run folder.
pub const FILE: &str = "calibration.json";

/// One adjuster's calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredCalibration {
    /// The scale (`npe_la`; 1 for `posthoc_la`).
    pub scale: f64,
    /// The `[C]` vector added (read-out `h̄`, or the estimated log-prior), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f64>>,
    /// Unlabelled training images it was computed from.
    pub images: usize,
}

/// Everything `calibration.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibrations {
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Training class counts (sample counts, or labelled pixels for segmentation).
    pub train_counts: Vec<u64>,
    /// Adjuster node → its calibration.
    pub adjusters: BTreeMap<String, StoredCalibration>,
    /// Where they come from (run, epoch, data set).
    pub provenance: String,
}

impl Calibrations {
    /// From a run's final evaluation.
    pub fn of(eval: &EvalReport, classes: &[String], train_counts: &[u64], images: usize, provenance: String) -> Self {
        let adjusters = eval
            .calibration
            .iter()
            .map(|(n, c)| (n.clone(), StoredCalibration { scale: c.scale, vector: c.vector.clone(), images }))
            .collect();
        Calibrations { classes: classes.to_vec(), train_counts: train_counts.to_vec(), adjusters, provenance }
    }

    /// Write `dir/calibration.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), crate::checkpoint::CheckpointError> {
        self.write_to(&dir.join(FILE))
    }

    /// Write them to `path` atomically.
    pub fn write_to(&self, path: &Path) -> Result<(), crate::checkpoint::CheckpointError> {
        let json = serde_json::to_vec_pretty(self).expect("calibrations serialise");
        crate::checkpoint::write_atomic(path, &json)
    }

    /// The calibrations of run folder `dir`: `calibration.json`, else (older runs) the final
    /// evaluation in `summary.json` (`images`: how many unlabelled images that evaluation read).
    pub fn read(dir: &Path, images: usize) -> Result<Self> {
        let path = dir.join(FILE);
        if let Ok(bytes) = std::fs::read(&path) {
            return serde_json::from_slice(&bytes).with_context(|| path.display());
        }
        let summary_path = dir.join("summary.json");
        let bytes = std::fs::read(&summary_path).map_err(|e| {
            format!(
                "{dir} has neither {FILE} nor summary.json ({e}): it is not a finished run folder",
                dir = dir.display()
            )
        })?;
        let s: Summary = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", summary_path.display()))?;
        let images = images.min(s.data.train_images);
        Ok(Self::of(
            &s.eval,
            &s.data.classes,
            &s.data.train_counts,
            images,
            format!("final evaluation in {} ({})", summary_path.display(), s.data.name),
        ))
    }

    /// Where `npe eval` stores the calibrations it computed for a model or checkpoint file:
    /// beside it, `NAME.calibration.json`.
    pub fn beside(model: &Path) -> std::path::PathBuf {
        model.with_extension(FILE)
    }

    /// The calibrations of `model`: the file [`beside`](Self::beside) it when `npe eval` wrote
    /// one, else those of its run folder `run_dir` ([`read`](Self::read)).
    pub fn for_model(model: &Path, run_dir: &Path) -> Result<Self> {
        let beside = Self::beside(model);
        match std::fs::read(&beside) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| beside.display()),
            Err(_) => Self::read(run_dir, usize::MAX),
        }
    }

    /// The training class prior of the counts.
    pub fn class_prior(&self) -> Vec<f64> {
        let total: u64 = self.train_counts.iter().sum();
        self.train_counts.iter().map(|&c| c as f64 / total.max(1) as f64).collect()
    }
}
