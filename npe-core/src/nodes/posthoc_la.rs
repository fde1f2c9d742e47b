//! `posthoc_la`: `logits − tau · log(prior)` with the prior from the training counts.

use crate::backend::ExecError;
use crate::kind::{Adjust, Cx, Declare, NodeDef, Value, defaults, expect_role, first};
use crate::nn::add_log_prior;
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

/// `posthoc_la` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PosthocLa {
    /// Raw logits.
    pub input: NodeRef,
    /// Strength. Default 1.
    #[serde(default = "defaults::one")]
    pub tau: f64,
}

impl NodeDef for PosthocLa {
    const KIND: &'static str = "posthoc_la";
    const CATEGORY: Category = Category::Adjuster;
    const SUMMARY: &'static str = "logits − tau·log(prior from counts)";
    type Lowered = ();

    fn check(&self) -> Result<(), String> {
        crate::kind::finite(&[("tau", self.tau)])
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig, String> {
        expect_role(&inputs[0], &[Role::Logits], "input")?;
        Ok(inputs[0])
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}

    fn forward(&self, _: &(), cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        add_log_prior(cx, first(inputs)?, -self.tau)
    }

    fn adjusts(&self) -> Option<Adjust<'_>> {
        Some(Adjust::AtInference(&self.input))
    }
}
