//! Heads on the features: the linear classifier and the prior estimation modules (PEMs).

use super::{InferCtx, NodeRef, defaults, expect_role};
use crate::ir::{Role, Sig};
use serde::{Deserialize, Serialize};

/// `linear`: the classifier `g(z)`. On dense features it is a 1×1 convolution.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinearParams {
    /// Features.
    pub input: NodeRef,
    /// Output classes; defaults to the data's class count (and must equal it if given).
    #[serde(default)]
    pub classes: Option<usize>,
    /// Learn a bias. Default true.
    #[serde(default = "defaults::yes")]
    pub bias: bool,
}

impl LinearParams {
    pub(crate) fn infer(&self, input: &Sig, ctx: &InferCtx) -> Result<Sig, String> {
        expect_role(input, &[Role::Features], "input")?;
        let c = check_classes(self.classes, ctx)?;
        Ok(Sig { role: Role::Logits, channels: c, spatial: input.spatial })
    }
}

fn check_classes(given: Option<usize>, ctx: &InferCtx) -> Result<usize, String> {
    match given {
        Some(c) if c != ctx.num_classes => Err(format!(
            "`classes: {c}` but the data has {} classes; remove `classes` to use the data's count",
            ctx.num_classes
        )),
        _ => Ok(ctx.num_classes),
    }
}

fn default_init_std() -> f64 {
    1e-3
}

/// `pem`: M prior estimation modules on the features, each with the logits' shape.
/// Trained with `one_way_logistic`; their centred output estimates the negative log-prior.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PemParams {
    /// Features (the same `z` the classifier reads).
    pub input: NodeRef,
    /// Number of PEMs, M ≥ 1. Default 1.
    #[serde(default = "defaults::one_usize")]
    pub count: usize,
    /// Hidden layer widths (ReLU between); empty = linear. Default empty.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Standard deviation of the N(0, std²) weight initialisation; biases start at 0. Default 0.001.
    #[serde(default = "default_init_std")]
    pub init_std: f64,
    /// Stop PEM gradients at the features (the backbone learns from the classifier only). Default false.
    #[serde(default)]
    pub detach: bool,
    /// Apply the optimiser's weight decay to PEM parameters. Default false (decay biases the estimate).
    #[serde(default)]
    pub weight_decay: bool,
    /// Kernel size of dense PEM convolutions (1 or 3); ignored for vector features. Default 1.
    #[serde(default = "defaults::one_usize")]
    pub kernel_size: usize,
    /// Classes; defaults to the data's (must equal it if given).
    #[serde(default)]
    pub classes: Option<usize>,
}

impl PemParams {
    pub(crate) fn infer(&self, input: &Sig, ctx: &InferCtx) -> Result<Sig, String> {
        expect_role(input, &[Role::Features], "input")?;
        if self.count == 0 {
            return Err("`count` must be at least 1".into());
        }
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return Err(format!("`init_std` must be a finite number ≥ 0, got {}", self.init_std));
        }
        if self.hidden.contains(&0) {
            return Err("`hidden` widths must be > 0".into());
        }
        if self.kernel_size != 1 && self.kernel_size != 3 {
            return Err(format!("`kernel_size` must be 1 or 3, got {}", self.kernel_size));
        }
        let c = check_classes(self.classes, ctx)?;
        Ok(Sig { role: Role::Pem { count: self.count }, channels: c, spatial: input.spatial })
    }
}
