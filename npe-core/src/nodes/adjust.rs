//! Inference-time adjusters: NPE logit adjustment, post-hoc logit adjustment, resizing.

use super::{NodeRef, defaults, expect_role};
use crate::ir::{Role, Sig};
use serde::{Deserialize, Serialize};

/// `npe_la`: `logits + (1/M) Σ_m (h_m − mean(h_m)) / scale`. The mean is over classes for
/// vectors and over (C, H, W) per image for maps; PEM maps are resized (bilinear) to the logits.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NpeLaParams {
    /// Raw logits.
    pub logits: NodeRef,
    /// PEM outputs.
    pub pem: NodeRef,
    /// Scale factor s ≥ 1 weakens the adjustment (LA with tau = 1/s). Default 1.
    #[serde(default = "defaults::one")]
    pub scale: f64,
}

impl NpeLaParams {
    pub(crate) fn infer(&self, logits: &Sig, pem: &Sig) -> Result<Sig, String> {
        expect_role(logits, &[Role::Logits], "logits")?;
        if !matches!(pem.role, Role::Pem { .. }) {
            return Err(format!("`pem` must be a `pem` node, got {pem}"));
        }
        if logits.channels != pem.channels {
            return Err(format!(
                "class count mismatch: logits have {} classes, PEMs {}",
                logits.channels, pem.channels
            ));
        }
        if logits.is_map() != pem.is_map() {
            return Err(format!("logits {logits} and PEM outputs {pem} must both be vectors or both maps"));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!("`scale` must be > 0, got {}", self.scale));
        }
        Ok(*logits)
    }
}

/// `posthoc_la`: `logits − tau · log(prior)` with the prior from the training counts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PosthocLaParams {
    /// Raw logits.
    pub input: NodeRef,
    /// Strength. Default 1.
    #[serde(default = "defaults::one")]
    pub tau: f64,
}

/// Target size of a `resize` node.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ResizeTo {
    /// `to: label` — the label map's size (the image size).
    Named(String),
    /// `to: [h, w]`.
    Size([usize; 2]),
}

/// `resize`: bilinear resize of logits or PEM maps (align_corners = false).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeParams {
    /// A dense map (logits or PEM outputs).
    pub input: NodeRef,
    /// `label` (default) or `[h, w]`.
    #[serde(default = "default_to")]
    pub to: ResizeTo,
    /// Label size, filled in by the IR builder from the data.
    #[serde(skip)]
    pub label_size: Option<[usize; 2]>,
}

fn default_to() -> ResizeTo {
    ResizeTo::Named("label".into())
}

impl ResizeParams {
    /// The output size.
    pub fn target(&self) -> Option<[usize; 2]> {
        match &self.to {
            ResizeTo::Size(s) => Some(*s),
            ResizeTo::Named(_) => self.label_size,
        }
    }

    pub(crate) fn infer(&self, input: &Sig) -> Result<Sig, String> {
        if !matches!(input.role, Role::Logits | Role::Pem { .. }) || !input.is_map() {
            return Err(format!("`input` must be a dense logits or PEM map, got {input}"));
        }
        if let ResizeTo::Named(n) = &self.to {
            if n != "label" {
                return Err(format!("`to` must be `label` or [h, w], got `{n}`"));
            }
        }
        let [h, w] = self.target().ok_or("`to: label` needs a data source with label maps")?;
        if h == 0 || w == 0 {
            return Err("`to` sizes must be > 0".into());
        }
        Ok(Sig { spatial: Some([h, w]), ..*input })
    }
}
