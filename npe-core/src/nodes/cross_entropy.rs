//! `cross_entropy`: softmax cross-entropy on raw logits (per pixel for maps).

use crate::error::Result;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, check_label_size, check_task_shape, defaults, expect_role, first};
use crate::nn::cross_entropy;
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

/// `cross_entropy` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrossEntropy {
    /// Logits.
    pub input: NodeRef,
    /// Multiplier in the total loss. Default 1.
    #[serde(default = "defaults::one")]
    pub weight: f64,
}

/// The checks every loss on logits makes: logits, of the task's shape, at the label size.
pub(crate) fn infer_logits_loss(input: &Sig, cx: &InferCtx) -> Result<Sig> {
    expect_role(input, &[Role::Logits], "input")?;
    check_task_shape(input, cx)?;
    check_label_size(input, cx, "input")?;
    Ok(Sig::scalar(Role::Loss))
}

impl NodeDef for CrossEntropy {
    const KIND: &'static str = "cross_entropy";
    const CATEGORY: Category = Category::Loss;
    const SUMMARY: &'static str = "softmax cross-entropy on raw logits";
    type Lowered = ();

    fn check(&self) -> Result<()> {
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
        let loss = cross_entropy(cx, &first(inputs)?)?;
        Ok(Value::Loss(cx.ops.mul_scalar(&loss, self.weight)?))
    }
}
