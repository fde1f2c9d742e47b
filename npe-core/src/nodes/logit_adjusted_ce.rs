//! `logit_adjusted_ce`: `CE(logits + tau·log(prior), y)` with the prior from the training counts
//! (Menon et al. 2021). Never combined with `npe_la` on the same logits.

use crate::error::Result;
use super::cross_entropy::infer_logits_loss;
use crate::backend::ExecError;
use crate::kind::{Adjust, Cx, Declare, NodeDef, Value, defaults, first};
use crate::nn::{add_log_prior, cross_entropy};
use crate::types::{Category, InferCtx, Input, NodeRef, Sig};
use serde::{Deserialize, Serialize};

/// `logit_adjusted_ce` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogitAdjustedCe {
    /// Logits.
    pub input: NodeRef,
    /// Strength of the adjustment. Default 1.
    #[serde(default = "defaults::one")]
    pub tau: f64,
    /// Multiplier in the total loss. Default 1.
    #[serde(default = "defaults::one")]
    pub weight: f64,
}

impl NodeDef for LogitAdjustedCe {
    const KIND: &'static str = "logit_adjusted_ce";
    const CATEGORY: Category = Category::Loss;
    const SUMMARY: &'static str = "CE on logits + tau·log(prior from counts)";
    type Lowered = ();

    fn check(&self) -> Result<()> {
        crate::kind::finite(&[("tau", self.tau), ("weight", self.weight)])
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], cx: &InferCtx) -> Result<Sig> {
        infer_logits_loss(&inputs[0], cx)
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}

    fn forward(&self, _: &(), cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let adjusted = add_log_prior(cx, first(inputs)?, self.tau)?;
        let loss = cross_entropy(cx, &adjusted)?;
        Ok(Value::Loss(cx.ops.mul_scalar(&loss, self.weight)?))
    }

    fn adjusts(&self) -> Option<Adjust<'_>> {
        Some(Adjust::TrainsWithCounts(&self.input))
    }
}
