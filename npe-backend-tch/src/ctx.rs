//! The forward context: parameter lookup by name, training/eval mode, targets; and layer
//! helpers (conv, batch norm, linear) scoped to a node.

use crate::error::{Result, TchBackendError};
use crate::params::ParamStore;
use npe_core::nodes::Params;
use tch::{Device, Tensor};

/// PyTorch's batch-norm defaults.
pub(crate) const BN_MOMENTUM: f64 = 0.1;
pub(crate) const BN_EPS: f64 = 1e-5;

/// Labels on the device.
pub(crate) enum Targets {
    /// `[N, 1]` class indices.
    Classes(Tensor),
    /// Per pixel: `[N, 1, H, W]` indices (ignored set to 0), float valid mask, valid count.
    Pixels { index: Tensor, valid: Tensor, count: usize },
}

/// Everything a node's forward pass can use.
pub struct Ctx<'a> {
    pub(crate) store: &'a ParamStore,
    /// Training mode (batch statistics, running-stat updates).
    pub train: bool,
    /// Device of the activations.
    pub device: Device,
    pub(crate) targets: Option<Targets>,
    pub(crate) log_prior: Tensor,
    /// Frozen nodes (they run in evaluation mode: batch norm uses running statistics).
    pub(crate) frozen: &'a std::collections::BTreeSet<String>,
}

impl Ctx<'_> {
    /// The parameter `name`.
    pub fn param(&self, name: &str) -> Result<&Tensor> {
        let i = self
            .store
            .get(name)
            .ok_or_else(|| TchBackendError::Internal(format!("parameter `{name}` is not in the layout")))?;
        Ok(&self.store.values[i])
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
    pub fn param(&self, local: &str) -> Result<&Tensor> {
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

    fn bias(&self, prefix: &str) -> Result<Option<&Tensor>> {
        let name = format!("{prefix}bias");
        if self.has(&name) { Ok(Some(self.param(&name)?)) } else { Ok(None) }
    }

    /// 2-D convolution with `{prefix}weight` (and `{prefix}bias` if declared).
    pub fn conv(&self, x: &Tensor, prefix: &str, stride: i64, padding: i64) -> Result<Tensor> {
        let w = self.param(&format!("{prefix}weight"))?;
        Ok(x.f_conv2d(w, self.bias(prefix)?, [stride, stride], [padding, padding], [1, 1], 1)?)
    }

    /// Batch normalisation (PyTorch's kernel: batch statistics and an in-place running-stat
    /// update in training, running statistics in evaluation).
    pub fn bn(&self, x: &Tensor, prefix: &str) -> Result<Tensor> {
        let w = self.param(&format!("{prefix}weight"))?;
        let b = self.param(&format!("{prefix}bias"))?;
        let rm = self.param(&format!("{prefix}running_mean"))?;
        let rv = self.param(&format!("{prefix}running_var"))?;
        Ok(x.f_batch_norm(Some(w), Some(b), Some(rm), Some(rv), self.train(), BN_MOMENTUM, BN_EPS, true)?)
    }

    /// `x · Wᵀ + b` with `{prefix}weight` of shape `[out, in]`.
    pub fn linear(&self, x: &Tensor, prefix: &str) -> Result<Tensor> {
        let w = self.param(&format!("{prefix}weight"))?;
        Ok(x.f_linear(w, self.bias(prefix)?)?)
    }
}

/// The option-A shortcut of CIFAR ResNets: every second pixel, channels zero-padded
/// (cout − cin)/2 on each side (as the reference PyTorch code does).
pub(crate) fn option_a_shortcut(x: &Tensor, cin: i64, cout: i64) -> Result<Tensor> {
    let pad = (cout - cin) / 2;
    let (h, w) = (x.size()[2], x.size()[3]);
    let sub = x.f_slice(2, 0, h, 2)?.f_slice(3, 0, w, 2)?;
    Ok(sub.f_constant_pad_nd([0, 0, 0, 0, pad, pad])?)
}
