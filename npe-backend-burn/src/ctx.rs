//! The forward context: parameter lookup by name, training/eval mode, batch-norm running-stat
//! updates, targets; and layer helpers (conv, batch norm, linear) scoped to a node.

use crate::error::BurnError;
use crate::params::ParamStore;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Int, Tensor, TensorData, module};
use npe_core::nodes::Params;
use std::cell::RefCell;

/// PyTorch's batch-norm defaults.
pub(crate) const BN_MOMENTUM: f64 = 0.1;
pub(crate) const BN_EPS: f64 = 1e-5;

/// A pending running-statistics update of one batch-norm layer.
pub(crate) struct BnUpdate {
    pub mean_idx: usize,
    pub var_idx: usize,
    pub mean: Tensor<1>,
    pub var: Tensor<1>,
    /// Values per channel in the batch (for the unbiased variance).
    pub n: usize,
}

/// Labels on the device.
pub(crate) enum Targets {
    /// `[N, 1]` class indices.
    Classes(Tensor<2, Int>),
    /// Per pixel: `[N, 1, H, W]` indices (ignored pixels set to 0), a float mask of valid
    /// pixels, and the number of valid pixels.
    Pixels { index: Tensor<4, Int>, valid: Tensor<4>, count: usize },
}

/// Everything a node's forward pass can use.
pub struct Ctx<'a> {
    pub(crate) store: &'a ParamStore,
    pub(crate) tensors: &'a [Tensor<1>],
    /// Training mode (batch statistics, running-stat updates).
    pub train: bool,
    /// Device of the activations.
    pub device: Device,
    pub(crate) bn: RefCell<Vec<BnUpdate>>,
    pub(crate) targets: Option<Targets>,
    pub(crate) log_prior: Tensor<1>,
    /// Frozen nodes (they run in evaluation mode: batch norm uses running statistics).
    pub(crate) frozen: &'a std::collections::BTreeSet<String>,
}

impl Ctx<'_> {
    /// The parameter `name`, reshaped to its declared shape.
    pub fn param<const D: usize>(&self, name: &str) -> Result<Tensor<D>, BurnError> {
        let i = self
            .store
            .get(name)
            .ok_or_else(|| BurnError::Internal(format!("parameter `{name}` is not in the layout")))?;
        let shape: [usize; D] = self.store.specs[i].shape.clone().try_into().map_err(|s: Vec<usize>| {
            BurnError::Internal(format!("parameter `{name}` has shape {s:?}, used as rank {D}"))
        })?;
        Ok(self.tensors[i].clone().reshape(shape))
    }

    /// Whether the layout has `name`.
    pub fn has(&self, name: &str) -> bool {
        self.store.get(name).is_some()
    }
}

/// A [`Ctx`] scoped to one node: parameter names are local (`conv1.weight`).
pub struct NodeCtx<'a> {
    /// The whole context.
    pub ctx: &'a Ctx<'a>,
    /// Node name (parameter prefix).
    pub node: &'a str,
    /// The node's YAML parameters (custom kinds read their own).
    pub params: Option<&'a Params>,
}

impl NodeCtx<'_> {
    fn full(&self, local: &str) -> String {
        format!("{}.{local}", self.node)
    }

    /// A parameter of this node.
    pub fn param<const D: usize>(&self, local: &str) -> Result<Tensor<D>, BurnError> {
        self.ctx.param(&self.full(local))
    }

    /// Whether this node has the parameter.
    pub fn has(&self, local: &str) -> bool {
        self.ctx.has(&self.full(local))
    }

    /// Training mode? (False for frozen nodes, which keep their batch-norm statistics.)
    pub fn train(&self) -> bool {
        self.ctx.train && !self.ctx.frozen.contains(self.node)
    }

    /// 2-D convolution with `{prefix}weight` (and `{prefix}bias` if declared).
    pub fn conv(&self, x: Tensor<4>, prefix: &str, stride: usize, padding: usize) -> Result<Tensor<4>, BurnError> {
        let w = self.param::<4>(&format!("{prefix}weight"))?;
        let b =
            if self.has(&format!("{prefix}bias")) { Some(self.param::<1>(&format!("{prefix}bias"))?) } else { None };
        Ok(module::conv2d(x, w, b, ConvOptions::new([stride, stride], [padding, padding], [1, 1], 1)))
    }

    /// Batch normalisation with `{prefix}weight/bias/running_mean/running_var`: batch statistics
    /// (and a running-stat update) in training, running statistics in evaluation.
    pub fn bn<const D: usize>(&self, x: Tensor<D>, prefix: &str) -> Result<Tensor<D>, BurnError> {
        let gamma = self.param::<1>(&format!("{prefix}weight"))?;
        let beta = self.param::<1>(&format!("{prefix}bias"))?;
        let mean_name = self.full(&format!("{prefix}running_mean"));
        let var_name = self.full(&format!("{prefix}running_var"));
        if self.train() {
            let dims = x.dims();
            let n = dims.iter().product::<usize>() / dims[1];
            let out = module::batch_norm_train(x, gamma, beta, BN_EPS);
            let idx =
                |name: &str| self.ctx.store.get(name).ok_or_else(|| BurnError::Internal(format!("`{name}` missing")));
            self.ctx.bn.borrow_mut().push(BnUpdate {
                mean_idx: idx(&mean_name)?,
                var_idx: idx(&var_name)?,
                mean: out.mean.inner(),
                var: out.variance.inner(),
                n,
            });
            Ok(out.output)
        } else {
            let mean = self.ctx.param::<1>(&mean_name)?;
            let var = self.ctx.param::<1>(&var_name)?;
            Ok(module::batch_norm(x, gamma, beta, mean, var, BN_EPS))
        }
    }

    /// `x · Wᵀ + b` with `{prefix}weight` of shape `[out, in]`.
    pub fn linear(&self, x: Tensor<2>, prefix: &str) -> Result<Tensor<2>, BurnError> {
        let w = self.param::<2>(&format!("{prefix}weight"))?;
        let y = x.matmul(w.transpose());
        if self.has(&format!("{prefix}bias")) {
            let b = self.param::<1>(&format!("{prefix}bias"))?;
            let out = y.dims()[1];
            Ok(y + b.reshape([1, out]))
        } else {
            Ok(y)
        }
    }
}

/// The option-A shortcut of CIFAR ResNets: take every second pixel and zero-pad the channels
/// (cout − cin)/2 on each side. Done as a stride-2 1×1 convolution with a fixed 0/1 kernel,
/// which is one fused kernel instead of a strided copy plus a concatenation.
pub(crate) fn option_a_shortcut(x: Tensor<4>, cin: usize, cout: usize) -> Tensor<4> {
    let pad = (cout - cin) / 2;
    let mut w = vec![0f32; cout * cin];
    for i in 0..cin {
        w[(i + pad) * cin + i] = 1.0;
    }
    let device = x.device();
    let w = Tensor::<4>::from_data(TensorData::new(w, [cout, cin, 1, 1]), &device);
    module::conv2d(x, w, None, ConvOptions::new([2, 2], [0, 0], [1, 1], 1))
}
