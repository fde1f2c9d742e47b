//! What training and evaluation report: per-epoch records (`metrics.jsonl`) and the summary
//! (`summary.json`), both plain serde structs so their schema is the code.

use crate::metrics::{Accuracy, PriorFit, SegMetrics};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The learned prior of one `pem` node against the truth, on the training and test splits.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PriorReport {
    /// `h̄` averaged over training images (no augmentation): the estimate of the training prior.
    pub train: Option<PriorFit>,
    /// The posterior read-out on the training images: class k's `h̄_k` weighted by the
    /// classifier's `p_k(x)` (when `prior_estimate` names the `logits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_posterior: Option<PriorFit>,
    /// The prior the classifier implies: its mean softmax over the training images (`posthoc_la`'s
    /// `prior: predicted`; when `prior_estimate` names the `logits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_predicted: Option<PriorFit>,
    /// `h̄` averaged over the (balanced) test images.
    pub test: PriorFit,
}

/// What an adjuster calibrated on unlabelled training images (`npe_la` with `readout` or
/// `scale: auto`, `posthoc_la` with `prior: predicted`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    /// The scale used (`npe_la`; 1 for `posthoc_la`).
    pub scale: f64,
    /// The `[C]` vector added (read-out `h̄`, or the estimated log-prior), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f64>>,
}

/// Evaluation of every evaluator node.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EvalReport {
    /// Adjusters calibrated on training images: node → what they use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calibration: BTreeMap<String, CalibrationReport>,
    /// `accuracy` evaluators: evaluator → evaluated output → metrics.
    pub accuracy: BTreeMap<String, BTreeMap<String, Accuracy>>,
    /// `prior_estimate` evaluators: evaluator → fit.
    pub prior: BTreeMap<String, PriorReport>,
    /// `iou` evaluators: evaluator → evaluated output → metrics.
    pub segmentation: BTreeMap<String, BTreeMap<String, SegMetrics>>,
    /// Test images evaluated.
    pub test_images: usize,
    /// Wall seconds of the pass over unlabelled training images (prior fit and calibrations;
    /// 0 when nothing asks for it or in files written before it was recorded).
    #[serde(default)]
    pub train_pass_seconds: f64,
    /// Wall seconds of the pass over the test split (0 in older files).
    #[serde(default)]
    pub test_pass_seconds: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epochs completed (1-based).
    pub epoch: usize,
    /// Optimisation steps so far.
    pub global_step: u64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Training seconds of this epoch.
    pub seconds: f64,
    /// Training throughput.
    pub images_per_second: f64,
    /// Mean training loss of the epoch: `total` and each loss node.
    pub train_loss: BTreeMap<String, f64>,
    /// Evaluation, on evaluation epochs.
    pub eval: Option<EvalReport>,
}

/// Data facts recorded with results, so numbers say what they come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DataReport {
    /// e.g. `Fashion-MNIST-LT (exponential, IF 100)`.
    pub name: String,
    /// Files read, or "generated in code".
    pub origin: String,
    /// real / semi_synthetic / synthetic.
    pub provenance: crate::data::Provenance,
    /// Class names.
    pub classes: Vec<String>,
    /// Training counts (images, or labelled pixels for segmentation).
    pub train_counts: Vec<u64>,
    /// Training images.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Group of each class (head/medium/tail) of the first accuracy evaluator.
    pub groups: Vec<String>,
    /// Unreadable image files left out (`data.on_corrupt: skip`).
    #[serde(default)]
    pub skipped_files: Vec<String>,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Pipeline name.
    pub pipeline: String,
    /// Backend and device.
    pub backend: String,
    /// The data.
    pub data: DataReport,
    /// Epochs trained.
    pub epochs: usize,
    /// Optimisation steps.
    pub steps: u64,
    /// Wall seconds spent in training steps (all epochs of this process).
    pub train_seconds: f64,
    /// Mean training throughput of this process.
    pub images_per_second: f64,
    /// Mean training loss of the last epoch.
    pub final_train_loss: BTreeMap<String, f64>,
    /// Final evaluation.
    pub eval: EvalReport,
    /// Exported model (parameters only).
    pub model: String,
    /// Where this process's wall time went (absent in files written before it was recorded).
    #[serde(default)]
    pub phases: PhaseSeconds,
}

/// Wall seconds of a run's phases in this process (a resumed run counts from its resume).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PhaseSeconds {
    /// Start to finish of `train` (data already loaded).
    pub wall: f64,
    /// Training steps (the same as `train_seconds`).
    pub train: f64,
    /// Evaluations: the passes over the test split.
    pub eval_test: f64,
    /// Evaluations: the passes over unlabelled training images (prior fit, calibrations).
    pub eval_train_images: f64,
    /// Writing checkpoints and the final model.
    pub checkpoint: f64,
}

impl PhaseSeconds {
    /// One line for the log: each phase's seconds and share of the wall time.
    pub fn describe(&self) -> String {
        let share = |x: f64| 100.0 * x / self.wall.max(1e-9);
        let other = (self.wall - self.train - self.eval_test - self.eval_train_images - self.checkpoint).max(0.0);
        format!(
            "{:.0} s: training {:.0} s ({:.1} %), evaluation {:.0} s ({:.1} %) of which training-image passes {:.0} s, checkpoints {:.1} s ({:.1} %), other {:.0} s ({:.1} %)",
            self.wall,
            self.train,
            share(self.train),
            self.eval_test + self.eval_train_images,
            share(self.eval_test + self.eval_train_images),
            self.eval_train_images,
            self.checkpoint,
            share(self.checkpoint),
            other,
            share(other)
        )
    }
}

/// What `npe eval --json` prints: the evaluation (its keys at the top level, as in
/// `summary.json`'s `eval`), plus what was evaluated and on which data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalOutput {
    /// The checkpoint or model file evaluated (empty in files written before it was recorded).
    #[serde(default)]
    pub checkpoint: String,
    /// Backend and device (empty in older files).
    #[serde(default)]
    pub backend: String,
    /// The data (absent in older files).
    #[serde(default)]
    pub data: Option<DataReport>,
    /// The evaluation.
    #[serde(flatten)]
    pub eval: EvalReport,
}

/// The file beside `summary.json` holding its CRC-32 (8 hex digits), written with it: a summary
/// edited by hand afterwards no longer matches, and `npe study` finishes its run again.
pub const SUMMARY_CHECKSUM: &str = "summary.json.crc32";

fn crc32_hex(bytes: &[u8]) -> String {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    format!("{:08x}", crc.sum())
}

/// Write `summary` as `out/summary.json` with its checksum (both atomically; the checksum last,
/// so a kill between the two leaves a mismatch, never a false match).
pub fn write_summary(out: &std::path::Path, summary: &Summary) -> Result<(), crate::checkpoint::CheckpointError> {
    let json = serde_json::to_vec_pretty(summary).expect("summary serializes");
    crate::checkpoint::write_atomic(&out.join("summary.json"), &json)?;
    crate::checkpoint::write_atomic(&out.join(SUMMARY_CHECKSUM), crc32_hex(&json).as_bytes())
}

/// Whether `summary.json`'s bytes match the checksum written with them: `None` when there is no
/// checksum (runs from before checksums existed).
pub fn summary_matches_checksum(out: &std::path::Path, bytes: &[u8]) -> Option<bool> {
    let want = std::fs::read_to_string(out.join(SUMMARY_CHECKSUM)).ok()?;
    Some(want.trim() == crc32_hex(bytes))
}

#[cfg(test)]
mod checksum_tests {
    use super::*;

    #[test]
    fn an_edited_summary_no_longer_matches_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = b"{\"a\": 1}";
        std::fs::write(dir.path().join(SUMMARY_CHECKSUM), crc32_hex(bytes)).unwrap();
        assert_eq!(summary_matches_checksum(dir.path(), bytes), Some(true));
        assert_eq!(summary_matches_checksum(dir.path(), b"{\"a\": 2}"), Some(false));
        std::fs::remove_file(dir.path().join(SUMMARY_CHECKSUM)).unwrap();
        assert_eq!(summary_matches_checksum(dir.path(), bytes), None);
    }
}
