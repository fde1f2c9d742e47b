//! Training losses.

use super::{NodeRef, defaults};
use serde::{Deserialize, Serialize};

/// `cross_entropy`: softmax cross-entropy on raw logits (per pixel for maps).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrossEntropyParams {
    /// Logits.
    pub input: NodeRef,
    /// Multiplier in the total loss. Default 1.
    #[serde(default = "defaults::one")]
    pub weight: f64,
}

/// `logit_adjusted_ce`: `CE(logits + tau·log(prior), y)` with the prior from the training counts
/// (Menon et al. 2021). Never combine with `npe_la` on the same logits.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogitAdjustedCeParams {
    /// Logits.
    pub input: NodeRef,
    /// Strength of the adjustment. Default 1.
    #[serde(default = "defaults::one")]
    pub tau: f64,
    /// Multiplier in the total loss. Default 1.
    #[serde(default = "defaults::one")]
    pub weight: f64,
}

/// How per-PEM losses combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// `(1/M) Σ_m L_m` (the default; the reference segmentation code).
    #[default]
    Mean,
    /// `Σ_m L_m` (the reference classification code).
    Sum,
}

/// `one_way_logistic`: `softplus(h_m(z)[y])` on the true class only, averaged over samples (or
/// valid pixels), then combined over PEMs by `reduction` and scaled by `weight`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OneWayLogisticParams {
    /// PEM outputs (a `pem` node).
    pub input: NodeRef,
    /// Multiplier w in `L = CE + w · L_pem`. Default 1.
    #[serde(default = "defaults::one")]
    pub weight: f64,
    /// `mean` or `sum` over the M PEMs. Default mean.
    #[serde(default)]
    pub reduction: Reduction,
}
