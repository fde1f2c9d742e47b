//! `mlp`: fully connected layers with ReLU on the flattened input.

use crate::error::Result;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, expect_role, first};
use crate::nn::{BatchNorm, Linear};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

fn default_hidden() -> Vec<usize> {
    vec![256, 256]
}

/// `mlp` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mlp {
    /// Input (usually `data`).
    pub input: NodeRef,
    /// Hidden layer widths; the last is the feature size. Default `[256, 256]`.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Batch normalisation after each hidden layer. Default false.
    #[serde(default)]
    pub batch_norm: bool,
}

impl NodeDef for Mlp {
    const KIND: &'static str = "mlp";
    const CATEGORY: Category = Category::Backbone;
    const SUMMARY: &'static str = "fully connected layers with ReLU on the flattened input";
    type Lowered = Vec<(Linear, Option<BatchNorm>)>;

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig> {
        expect_role(&inputs[0], &[Role::Image, Role::Features], "input")?;
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err("`hidden` needs at least one layer, all widths > 0".into());
        }
        Ok(Sig::vector(Role::Features, *self.hidden.last().unwrap()))
    }

    fn lower(&self, d: &mut Declare, inputs: &[Sig], _: &Sig) -> Self::Lowered {
        let mut inp = inputs[0].numel();
        let mut layers = vec![];
        for (i, &h) in self.hidden.iter().enumerate() {
            let linear = Linear::new(d, &format!("layers.{i}"), inp, h, true);
            let norm = self.batch_norm.then(|| BatchNorm::new(d, &format!("norms.{i}"), h));
            layers.push((linear, norm));
            inp = h;
        }
        layers
    }

    fn forward(&self, layers: &Self::Lowered, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let mut h = first(inputs)?.flat(cx.ops)?;
        for (linear, norm) in layers {
            h = linear.forward(cx, &h)?;
            if let Some(norm) = norm {
                h = norm.forward(cx, &h)?;
            }
            h = cx.ops.relu(&h)?;
        }
        Ok(Value::Vec(h))
    }
}
