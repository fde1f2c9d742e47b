//! `prior_estimate`: the learned prior against the true training prior, on the host.

use crate::kind::{Declare, NodeDef};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

/// `prior_estimate`: the learned prior `softmax(−mean h)` against the true training prior
/// (Pearson r and slope of `−h` on `log prior`, KL divergence).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriorEstimate {
    /// A `pem` node.
    pub input: NodeRef,
}

impl NodeDef for PriorEstimate {
    const KIND: &'static str = "prior_estimate";
    const CATEGORY: Category = Category::Evaluator;
    const SUMMARY: &'static str = "learned vs true training prior (r, slope, KL)";
    type Lowered = ();

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig, String> {
        if !matches!(inputs[0].role, Role::Pem { .. }) {
            return Err(format!("`input` must be a `pem` node, got {}", inputs[0].role));
        }
        Ok(Sig::scalar(Role::Report))
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}
}
