//! `npe_la`: `logits + (1/M) Σ_m (h_m − mean(h_m)) / scale`. The mean is over classes for
//! vectors and over (C, H, W) per image for maps; PEM maps are resized (bilinear) to the logits.
//! With `readout: mean | posterior`, `h` is one vector per class read from unlabelled training
//! images instead of each image's own PEM output; `scale: auto` fits `s` on them (see
//! [`Readout`], [`Scale`]).

use crate::error::Result;
use crate::backend::{ExecError, Request};
use crate::kind::calibrate::{StatsOf, ln, slope};
use crate::kind::{Adjust, Cx, Declare, NodeDef, Value, expect_role};
use crate::nn::add_class_vector;
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

/// `npe_la` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NpeLa {
    /// Raw logits.
    pub logits: NodeRef,
    /// PEM outputs.
    pub pem: NodeRef,
    /// Scale factor s ≥ 1 weakens the adjustment (LA with tau = 1/s), or `auto`. Default 1.
    #[serde(default)]
    pub scale: Scale,
    /// Which PEM output adjusts the logits. Default `sample` (the paper).
    #[serde(default)]
    pub readout: Readout,
}

/// Where `npe_la` reads the PEMs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Readout {
    /// Each image's (pixel's) own PEM output, as in the paper.
    #[default]
    Sample,
    /// One vector: the PEM output averaged over the (unlabelled) training images, i.e. the
    /// learned prior `prior_estimate` reports.
    Mean,
    /// One vector: class k's PEM output averaged over the training images weighted by the
    /// classifier's posterior `p_k(x)`, i.e. read on class k's own images, where the one-way
    /// loss trains `h_k`.
    Posterior,
}

/// `npe_la`'s scale: a number, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Scale {
    /// A fixed `s`.
    Fixed(f64),
    /// Fitted on unlabelled training images (see [`Auto`]).
    Auto(Auto),
}

/// `scale: auto`: `s` is the least-squares slope of the PEM's learned log-prior (`−h̄`, the
/// `mean` read-out) on the log of the classifier's mean posterior over unlabelled training
/// images (the prior the classifier implies; at a stationary point of cross-entropy it is the
/// training prior). The adjustment then has slope 1, the strength logit adjustment prescribes,
/// while its shape stays the PEM's. No labels, no counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Auto {
    /// `auto`
    Auto,
}

impl Default for Scale {
    fn default() -> Self {
        Scale::Fixed(1.0)
    }
}

impl NpeLa {
    fn mean_request(&self) -> Request {
        Request::ClassSums { values: Some(self.pem.node.clone()), weights: None }
    }

    fn readout_request(&self) -> Option<Request> {
        match self.readout {
            Readout::Sample => None,
            Readout::Mean => Some(self.mean_request()),
            Readout::Posterior => {
                Some(Request::ClassSums { values: Some(self.pem.node.clone()), weights: Some(self.logits.node.clone()) })
            }
        }
    }

    fn classifier_request(&self) -> Request {
        Request::ClassSums { values: None, weights: Some(self.logits.node.clone()) }
    }

    /// What evaluation must gather on unlabelled training images for this node (nothing for the
    /// paper's defaults).
    pub fn calibration_requests(&self) -> Vec<Request> {
        let mut r: Vec<Request> = self.readout_request().into_iter().collect();
        if self.scale == Scale::Auto(Auto::Auto) {
            r.extend([self.mean_request(), self.classifier_request()]);
        }
        r
    }

    /// The read-out vector and the scale, from the gathered statistics.
    pub fn calibrate(&self, stats: StatsOf) -> (Option<Vec<f64>>, f64) {
        let vector = self.readout_request().map(|r| stats(&r).mean());
        let scale = match self.scale {
            Scale::Fixed(s) => s,
            Scale::Auto(_) => {
                let h = vector.clone().unwrap_or_else(|| stats(&self.mean_request()).mean());
                let minus_h: Vec<f64> = h.iter().map(|v| -v).collect();
                let s = slope(&ln(&stats(&self.classifier_request()).share()), &minus_h);
                if s.is_finite() && s > 1e-3 {
                    s
                } else {
                    tracing::warn!(
                        "npe_la scale: auto: the PEM's log-prior does not grow with the classifier's (slope {s:.3}); using scale 1"
                    );
                    1.0
                }
            }
        };
        (vector, scale)
    }
}

impl NodeDef for NpeLa {
    const KIND: &'static str = "npe_la";
    const CATEGORY: Category = Category::Adjuster;
    const SUMMARY: &'static str = "logits + centred mean PEM output / s (no counts needed)";
    type Lowered = ();

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("logits", &self.logits), Input::new("pem", &self.pem)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig> {
        let (logits, pem) = (&inputs[0], &inputs[1]);
        expect_role(logits, &[Role::Logits], "logits")?;
        if !matches!(pem.role, Role::Pem { .. }) {
            return Err(format!("`pem` must be a `pem` node, got {pem}").into());
        }
        if logits.channels != pem.channels {
            return Err(format!(
                "class count mismatch: logits have {} classes, PEMs {}",
                logits.channels, pem.channels
            ).into());
        }
        if logits.is_map() != pem.is_map() {
            return Err(format!("logits {logits} and PEM outputs {pem} must both be vectors or both maps").into());
        }
        if let Scale::Fixed(s) = self.scale
            && !(s.is_finite() && s > 0.0)
        {
            return Err(format!("`scale` must be > 0 or `auto`, got {s}").into());
        }
        Ok(*logits)
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}

    fn forward(&self, _: &(), cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let ops = cx.ops;
        let mut it = inputs.into_iter();
        let (logits, pems) = (it.next(), it.next().map(Value::pems));
        let (Some(logits), Some(pems)) = (logits, pems) else {
            return Err(ExecError::Internal("npe_la needs logits and PEM outputs".into()));
        };
        let pems = pems?;
        let calibrated = cx.calibration();
        if calibrated.is_none() && !self.calibration_requests().is_empty() {
            return Err(ExecError::Unavailable(
                "`readout: mean|posterior` and `scale: auto` are computed from training images, which only evaluation reads".into(),
            ));
        }
        let scale = calibrated.map_or(0.0, |c| c.scale);
        let scale = if let Scale::Fixed(s) = self.scale { s } else { scale };
        if let Some(r) = calibrated.and_then(|c| c.vector.as_ref()) {
            let centred = ops.sub(r, &ops.mean_dims(r, &[0], true)?)?;
            return add_class_vector(ops, logits, &centred, 1.0 / scale);
        }
        let l = logits.tensor()?;
        let shape = ops.shape(l)?;
        let map = matches!(logits, Value::Map(_));
        let mut adj = None;
        for h in &pems {
            let h = if map {
                let h = h.clone().map(ops)?;
                let hs = ops.shape(&h)?;
                if hs[2..] == shape[2..] { h } else { ops.resize_bilinear(&h, [shape[2], shape[3]])? }
            } else {
                h.clone().flat(ops)?
            };
            let dims: &[usize] = if map { &[1, 2, 3] } else { &[1] };
            let centred = ops.sub(&h, &ops.mean_dims(&h, dims, true)?)?;
            adj = Some(match adj {
                Some(a) => ops.add(&a, &centred)?,
                None => centred,
            });
        }
        let adj = adj.expect("pems() is never empty");
        let scaled = ops.mul_scalar(&adj, 1.0 / (pems.len() as f64 * scale))?;
        logits.like(ops.add(l, &scaled)?)
    }

    fn adjusts(&self) -> Option<Adjust<'_>> {
        Some(Adjust::AtInference(&self.logits))
    }
}
