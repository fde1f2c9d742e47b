//! The forward context: the backend's operations, the parameters of this pass, the mode, the
//! labels and the class prior.

use super::ParamId;
use crate::backend::ExecError;
use crate::tensor::{Ops, Tensor};

/// Labels on the device.
#[derive(Clone, Debug)]
pub enum Targets {
    /// `[N, 1]` class indices.
    Classes(Tensor),
    /// Per pixel: `[N, 1, H, W]` indices (ignored pixels set to 0), a float mask of valid
    /// pixels, and the number of valid pixels.
    Pixels {
        /// Class index per pixel.
        index: Tensor,
        /// 1 for labelled pixels, 0 for ignored ones.
        valid: Tensor,
        /// Number of labelled pixels.
        count: usize,
    },
}

/// Everything a node's forward pass can use.
pub struct Cx<'a> {
    /// The backend's tensor operations.
    pub ops: &'a dyn Ops,
    params: &'a [Tensor],
    train: bool,
    frozen: bool,
    targets: Option<&'a Targets>,
    log_prior: &'a Tensor,
    running: Vec<(ParamId, Tensor)>,
    calibrations: &'a [Option<Calibration>],
    step: usize,
    sync_batch_norm: bool,
}

/// An adjuster's calibration from unlabelled training images (see `Executor::set_calibration`).
#[derive(Clone, Debug)]
pub struct Calibration {
    /// A `[C]` vector (a dataset-level read-out or an estimated log-prior).
    pub vector: Option<Tensor>,
    /// A fitted scale.
    pub scale: f64,
}

impl<'a> Cx<'a> {
    /// A pass over `params` (in layout order) in training or evaluation mode.
    pub fn new(
        ops: &'a dyn Ops,
        params: &'a [Tensor],
        train: bool,
        targets: Option<&'a Targets>,
        log_prior: &'a Tensor,
    ) -> Self {
        Self {
            ops,
            params,
            train,
            frozen: false,
            targets,
            log_prior,
            running: vec![],
            calibrations: &[],
            step: 0,
            sync_batch_norm: false,
        }
    }

    /// With the adjusters' calibrations, by step (see [`calibration`](Self::calibration)).
    pub fn with_calibrations(mut self, calibrations: &'a [Option<Calibration>]) -> Self {
        self.calibrations = calibrations;
        self
    }

    /// With batch-norm statistics over every rank of a data-parallel run (`train.sync_batch_norm`).
    pub fn with_sync_batch_norm(mut self, on: bool) -> Self {
        self.sync_batch_norm = on;
        self
    }

    /// Whether training-mode batch norm computes its statistics over every rank.
    pub fn sync_batch_norm(&self) -> bool {
        self.sync_batch_norm && self.train()
    }

    /// The current node's calibration, when the evaluation computed one.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibrations.get(self.step).and_then(Option::as_ref)
    }

    pub(crate) fn set_step(&mut self, step: usize, frozen: bool) {
        self.step = step;
        self.frozen = frozen;
    }

    /// A declared parameter.
    pub fn param(&self, id: ParamId) -> &Tensor {
        &self.params[id.0]
    }

    /// Training mode for the current node (frozen nodes run in evaluation mode: batch norm uses
    /// and keeps its running statistics).
    pub fn train(&self) -> bool {
        self.train && !self.frozen
    }

    /// The batch's labels (losses only).
    pub fn targets(&self) -> Result<&Targets, ExecError> {
        self.targets.ok_or_else(|| ExecError::Internal("a loss ran without labels".into()))
    }

    /// `log(prior)` of the training counts, `[C]`.
    pub fn log_prior(&self) -> &Tensor {
        self.log_prior
    }

    /// Replace a buffer's value after this pass (running statistics).
    pub fn set_buffer(&mut self, id: ParamId, value: Tensor) {
        self.running.push((id, value));
    }

    pub(crate) fn take_buffers(&mut self) -> Vec<(ParamId, Tensor)> {
        std::mem::take(&mut self.running)
    }
}
