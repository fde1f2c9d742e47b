//! `prior_estimate`: the learned prior against the true training prior, on the host.

use crate::error::Result;
use crate::kind::{Declare, NodeDef, expect_role};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

/// `prior_estimate`: the learned prior `softmax(−mean h)` against the true training prior
/// (Pearson r and slope of `−h` on `log prior`, KL divergence). With `logits`, also the
/// posterior read-out (`npe_la`'s `readout: posterior`) on the training images.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriorEstimate {
    /// A `pem` node.
    pub input: NodeRef,
    /// The classifier's logits: also report the posterior-weighted read-out.
    #[serde(default)]
    pub logits: Option<NodeRef>,
}

impl NodeDef for PriorEstimate {
    const KIND: &'static str = "prior_estimate";
    const CATEGORY: Category = Category::Evaluator;
    const SUMMARY: &'static str = "learned vs true training prior (r, slope, KL)";
    type Lowered = ();

    fn inputs(&self) -> Vec<Input> {
        std::iter::once(Input::new("input", &self.input))
            .chain(self.logits.as_ref().map(|l| Input::new("logits", l)))
            .collect()
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig> {
        if !matches!(inputs[0].role, Role::Pem { .. }) {
            return Err(format!("`input` must be a `pem` node, got {}", inputs[0].role).into());
        }
        if let Some(l) = inputs.get(1) {
            expect_role(l, &[Role::Logits], "logits")?;
            if l.channels != inputs[0].channels {
                return Err(format!("class count mismatch: logits have {} classes, PEMs {}", l.channels, inputs[0].channels).into());
            }
        }
        Ok(Sig::scalar(Role::Report))
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}
}
