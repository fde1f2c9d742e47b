//! `one_way_logistic`: `softplus(h_m(z)[y])` on the true class only, averaged over samples (or
//! valid pixels), then combined over PEMs by `reduction` and scaled by `weight`.

use crate::error::Result;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, check_label_size, check_task_shape, defaults, first};
use crate::nn::true_class_mean;
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

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

/// `one_way_logistic` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OneWayLogistic {
    /// PEM outputs (a `pem` node).
    pub input: NodeRef,
    /// Multiplier w in `L = CE + w · L_pem`. Default 1.
    #[serde(default = "defaults::one")]
    pub weight: f64,
    /// `mean` or `sum` over the M PEMs. Default mean.
    #[serde(default)]
    pub reduction: Reduction,
}

impl NodeDef for OneWayLogistic {
    const KIND: &'static str = "one_way_logistic";
    const CATEGORY: Category = Category::Loss;
    const SUMMARY: &'static str = "softplus of the true-class PEM output";
    type Lowered = ();

    fn check(&self) -> Result<()> {
        crate::kind::finite(&[("weight", self.weight)])
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], cx: &InferCtx) -> Result<Sig> {
        if !matches!(inputs[0].role, Role::Pem { .. }) {
            return Err(format!("`input` must be PEM outputs (a `pem` node), got {}", inputs[0].role).into());
        }
        check_task_shape(&inputs[0], cx)?;
        check_label_size(&inputs[0], cx, "input")?;
        Ok(Sig::scalar(Role::Loss))
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}

    fn forward(&self, _: &(), cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let pems = first(inputs)?.pems()?;
        let m = pems.len();
        let mut total = None;
        for h in &pems {
            let l = true_class_mean(cx, h, |ops, t| ops.softplus(&t))?;
            total = Some(match total {
                Some(t) => cx.ops.add(&t, &l)?,
                None => l,
            });
        }
        let scale = match self.reduction {
            Reduction::Mean => self.weight / m as f64,
            Reduction::Sum => self.weight,
        };
        Ok(Value::Loss(cx.ops.mul_scalar(&total.expect("pems() is never empty"), scale)?))
    }
}
