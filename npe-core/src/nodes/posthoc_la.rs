//! `posthoc_la`: `logits − tau · log(prior)` with the prior from the training counts, or
//! (`prior: predicted`) the prior the classifier implies on unlabelled training images.

use crate::error::Result;
use crate::backend::{ExecError, Request};
use crate::kind::calibrate::{StatsOf, ln};
use crate::kind::{Adjust, Cx, Declare, NodeDef, Value, defaults, expect_role, first};
use crate::nn::{add_class_vector, add_log_prior};
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
    /// Which prior. Default `counts`.
    #[serde(default)]
    pub prior: PriorSource,
}

/// Where `posthoc_la` takes the prior from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorSource {
    /// The training class counts (Menon et al.).
    #[default]
    Counts,
    /// The classifier's mean posterior (softmax) over unlabelled training images: no counts,
    /// no labels (at a stationary point of cross-entropy it equals the training prior).
    Predicted,
}

impl PosthocLa {
    fn request(&self) -> Request {
        Request::ClassSums { values: None, weights: Some(self.input.node.clone()) }
    }

    /// What evaluation must gather on unlabelled training images (nothing with `counts`).
    pub fn calibration_requests(&self) -> Vec<Request> {
        match self.prior {
            PriorSource::Counts => vec![],
            PriorSource::Predicted => vec![self.request()],
        }
    }

    /// The estimated log-prior, from the gathered statistics.
    pub fn calibrate(&self, stats: StatsOf) -> (Option<Vec<f64>>, f64) {
        match self.prior {
            PriorSource::Counts => (None, 1.0),
            PriorSource::Predicted => (Some(ln(&stats(&self.request()).share())), 1.0),
        }
    }
}

impl NodeDef for PosthocLa {
    const KIND: &'static str = "posthoc_la";
    const CATEGORY: Category = Category::Adjuster;
    const SUMMARY: &'static str = "logits − tau·log(prior): from counts, or predicted on unlabelled images";
    type Lowered = ();

    fn check(&self) -> Result<()> {
        crate::kind::finite(&[("tau", self.tau)])
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig> {
        expect_role(&inputs[0], &[Role::Logits], "input")?;
        Ok(inputs[0])
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}

    fn forward(&self, _: &(), cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        match self.prior {
            PriorSource::Counts => add_log_prior(cx, first(inputs)?, -self.tau),
            PriorSource::Predicted => {
                let Some(v) = cx.calibration().and_then(|c| c.vector.as_ref()) else {
                    return Err(ExecError::Unavailable(
                        "`prior: predicted` is computed from training images, which only evaluation reads".into(),
                    ));
                };
                add_class_vector(cx.ops, first(inputs)?, v, -self.tau)
            }
        }
    }

    fn adjusts(&self) -> Option<Adjust<'_>> {
        Some(Adjust::AtInference(&self.input))
    }
}
