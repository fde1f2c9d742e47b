//! What training and evaluation report: per-epoch records (`metrics.jsonl`) and the summary
//! (`summary.json`), both plain serde structs so their schema is the code.

use super::metrics::{Accuracy, PriorFit, SegMetrics};
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
