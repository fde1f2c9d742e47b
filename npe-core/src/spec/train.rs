//! The `train:` and `eval:` sections: optimiser, schedule, checkpoints, evaluation cadence.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

fn default_epochs() -> usize {
    10
}
fn default_batch() -> usize {
    128
}
fn default_lr() -> f64 {
    0.1
}
fn default_momentum() -> f64 {
    0.9
}
fn default_gamma() -> f64 {
    0.1
}
fn default_every() -> usize {
    1
}
fn default_keep() -> usize {
    2
}
fn default_eval_batch() -> usize {
    500
}

/// Optimiser kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// SGD with momentum, PyTorch semantics (dampening 0 unless set).
    #[default]
    Sgd,
    /// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, PyTorch semantics.
    Adamw,
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f64 {
    1e-8
}
fn default_lr_scale() -> f64 {
    1.0
}

/// Optimiser settings for some nodes' parameters (`train.optimizer.param_groups`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParamGroup {
    /// Nodes whose parameters this group covers.
    pub nodes: Vec<String>,
    /// Their learning rate is the schedule's times this. Default 1.
    #[serde(default = "default_lr_scale")]
    pub lr_scale: f64,
    /// Whether weight decay applies to their weights (default: each node's own policy).
    #[serde(default)]
    pub weight_decay: Option<bool>,
    /// Another optimiser for these nodes (e.g. `sgd` for PEMs under an `adamw` backbone: Adam's
    /// per-parameter normalisation erases the class frequencies the PEM estimate is built on).
    #[serde(default)]
    pub kind: Option<OptimizerKind>,
}

/// `train.optimizer`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSpec {
    /// `sgd` or `adamw`.
    #[serde(default)]
    pub kind: OptimizerKind,
    /// Base learning rate. Default 0.1.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Momentum. Default 0.9.
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Dampening of the momentum (PyTorch default 0). Default 0.
    #[serde(default)]
    pub dampening: f64,
    /// Nesterov momentum. Default false.
    #[serde(default)]
    pub nesterov: bool,
    /// Weight decay: added to the gradient (SGD) or decoupled (AdamW). PEMs opt out unless
    /// `pem.weight_decay: true`. Default 0.
    #[serde(default)]
    pub weight_decay: f64,
    /// AdamW's (β₁, β₂). Default `[0.9, 0.999]`.
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// AdamW's ε. Default 1e-8.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Per-node learning-rate scales and weight-decay switches (e.g. a smaller rate for a
    /// pretrained backbone). Default none.
    #[serde(default)]
    pub param_groups: Vec<ParamGroup>,
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Sgd,
            lr: default_lr(),
            momentum: default_momentum(),
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            betas: default_betas(),
            eps: default_eps(),
            param_groups: vec![],
        }
    }
}

/// Learning-rate schedule kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Constant lr.
    #[default]
    Constant,
    /// Multiply by `gamma` at each milestone epoch.
    Multistep,
    /// Cosine annealing from lr to `min_lr` over all steps (per step).
    Cosine,
}

/// `train.schedule`. A linear warm-up (`warmup_epochs`) can precede any kind.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// `constant`, `multistep` or `cosine`.
    #[serde(default)]
    pub kind: ScheduleKind,
    /// `multistep`: epochs at which the lr is multiplied by `gamma`.
    #[serde(default)]
    pub milestones: Vec<usize>,
    /// `multistep` factor. Default 0.1.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// `cosine`: final lr. Default 0.
    #[serde(default)]
    pub min_lr: f64,
    /// Linear warm-up from lr/warmup_steps to lr over this many epochs (per step). Default 0.
    #[serde(default)]
    pub warmup_epochs: f64,
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Constant,
            milestones: vec![],
            gamma: default_gamma(),
            min_lr: 0.0,
            warmup_epochs: 0.0,
        }
    }
}

/// `train.checkpoint`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Write a checkpoint every this many epochs (and always after the last). Default 1.
    #[serde(default = "default_every")]
    pub every_epochs: usize,
    /// Keep this many most recent epoch checkpoints. Default 2.
    #[serde(default = "default_keep")]
    pub keep_last: usize,
}

impl Default for CheckpointSpec {
    fn default() -> Self {
        Self { every_epochs: 1, keep_last: default_keep() }
    }
}

/// The `train:` section.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Epochs. Default 10.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Batch size. Default 128.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Drop the last incomplete batch of each epoch. Default false.
    #[serde(default)]
    pub drop_last: bool,
    /// Optimiser.
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    /// Learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleSpec,
    /// Nodes whose parameters are not trained (post-hoc PEM training freezes the backbone and head).
    #[serde(default)]
    pub freeze: Vec<String>,
    /// Start from the parameters of this checkpoint (missing parameters keep their initialisation).
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// Checkpoint cadence.
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
    /// Stop each epoch after this many steps (quick experiments and tests).
    #[serde(default)]
    pub max_steps_per_epoch: Option<usize>,
    /// CPU threads for the backend's kernels (0 = all cores). Default 0.
    #[serde(default)]
    pub threads: usize,
    /// Also write TensorBoard event files under `<out>/tensorboard/` (`tensorboard --logdir runs`).
    /// Default false.
    #[serde(default)]
    pub tensorboard: bool,
    /// Precision of convolutions and matrix products (`fp32`, `bf16`, `fp16` on CUDA), with
    /// float32 parameters, losses and statistics. Default fp32.
    #[serde(default)]
    pub precision: crate::tensor::Precision,
    /// Images (and so convolution activations) in channels-last layout. Default: what the
    /// backbone was measured to train faster with on libtorch at this precision (the IR's
    /// `channels_last()`); `false` or `true` decides.
    #[serde(default)]
    pub channels_last: Option<bool>,
    /// Data-parallel runs: batch norm computes its statistics over the global batch (every
    /// rank's samples) instead of each rank's part. Default false (per rank, as PyTorch DDP).
    #[serde(default)]
    pub sync_batch_norm: bool,
    /// Data-parallel runs: seconds a rank waits for the others (rendezvous, a collective) before
    /// it stops with an error naming the ranks that did not answer. Default 60.
    #[serde(default = "default_dist_timeout")]
    pub dist_timeout_s: f64,
}

fn default_dist_timeout() -> f64 {
    60.0
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch_size: default_batch(),
            drop_last: false,
            optimizer: OptimizerSpec::default(),
            schedule: ScheduleSpec::default(),
            freeze: vec![],
            init_from: None,
            checkpoint: CheckpointSpec::default(),
            max_steps_per_epoch: None,
            threads: 0,
            tensorboard: false,
            precision: Default::default(),
            channels_last: None,
            sync_batch_norm: false,
            dist_timeout_s: default_dist_timeout(),
        }
    }
}

/// The `eval:` section.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// Evaluate every this many epochs (and always after the last). Default 1.
    #[serde(default = "default_every")]
    pub every_epochs: usize,
    /// Batch size for evaluation. Default 500.
    #[serde(default = "default_eval_batch")]
    pub batch_size: usize,
    /// Training samples used for the prior estimate's train-split statistics (0 = skip). Default 5000.
    #[serde(default = "default_prior_samples")]
    pub prior_train_samples: usize,
}

fn default_prior_samples() -> usize {
    5000
}

impl Default for EvalSpec {
    fn default() -> Self {
        Self { every_epochs: 1, batch_size: default_eval_batch(), prior_train_samples: default_prior_samples() }
    }
}
