//! `focal`: the focal loss of Lin et al. (2017), `−(1 − p_t)^γ · log p_t` on the true class,
//! averaged over samples (or labelled pixels); γ = 0 is cross-entropy.

use crate::error::Result;
use super::cross_entropy::infer_logits_loss;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, defaults, first};
use crate::nn::true_class_mean;
use crate::types::{Category, InferCtx, Input, NodeRef, Sig};
use serde::{Deserialize, Serialize};

fn default_gamma() -> f64 {
    2.0
}

/// `focal` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Focal {
    /// Logits.
    pub input: NodeRef,
    /// Focusing parameter γ ≥ 0: down-weights well-classified samples. Default 2.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Multiplier in the total loss. Default 1.
    #[serde(default = "defaults::one")]
    pub weight: f64,
}

impl NodeDef for Focal {
    const KIND: &'static str = "focal";
    const CATEGORY: Category = Category::Loss;
    const SUMMARY: &'static str = "focal loss −(1−p_t)^γ·log p_t (Lin et al.; γ = 0 is CE)";
    type Lowered = ();

    fn check(&self) -> Result<()> {
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            return Err(format!("`gamma` must be a finite number ≥ 0, got {}", self.gamma).into());
        }
        crate::kind::finite(&[("weight", self.weight)])
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], cx: &InferCtx) -> Result<Sig> {
        infer_logits_loss(&inputs[0], cx)
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}

    fn forward(&self, _: &(), cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let logits = first(inputs)?;
        let log_p = logits.like(cx.ops.log_softmax(logits.tensor()?, 1)?)?;
        let gamma = self.gamma;
        let loss = true_class_mean(cx, &log_p, |ops, log_pt| {
            // (1 − p_t)^γ, with 1 − p_t clamped at 0 against rounding.
            let rest = ops.relu(&ops.add_scalar(&ops.neg(&ops.exp(&log_pt)?)?, 1.0)?)?;
            let w = if gamma == 0.0 { None } else { Some(ops.powf_scalar(&rest, gamma)?) };
            let nll = ops.neg(&log_pt)?;
            match w {
                Some(w) => ops.mul(&w, &nll),
                None => Ok(nll),
            }
        })?;
        Ok(Value::Loss(cx.ops.mul_scalar(&loss, self.weight)?))
    }
}
