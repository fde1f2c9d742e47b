//! `linear`: the classifier `g(z)`. On dense features it is a 1×1 convolution.

use crate::error::Result;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, check_classes, defaults, expect_role, first};
use crate::nn::{Conv2d, Linear, Proj, torch_default};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

/// `linear` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinearHead {
    /// Features.
    pub input: NodeRef,
    /// Output classes; defaults to the data's class count (and must equal it if given).
    #[serde(default)]
    pub classes: Option<usize>,
    /// Learn a bias. Default true.
    #[serde(default = "defaults::yes")]
    pub bias: bool,
}

impl NodeDef for LinearHead {
    const KIND: &'static str = "linear";
    const CATEGORY: Category = Category::Head;
    const SUMMARY: &'static str = "linear classifier g(z) (1×1 conv on maps)";
    type Lowered = Proj;

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], cx: &InferCtx) -> Result<Sig> {
        expect_role(&inputs[0], &[Role::Features], "input")?;
        let c = check_classes(self.classes, cx)?;
        Ok(Sig { role: Role::Logits, channels: c, spatial: inputs[0].spatial })
    }

    /// `weight` `[C, d]` (`[C, d, 1, 1]` on maps) and `bias` at the node's root.
    fn lower(&self, d: &mut Declare, inputs: &[Sig], out: &Sig) -> Proj {
        let inp = inputs[0].channels;
        if inputs[0].is_map() {
            let init = torch_default(inp);
            Proj::Conv(Conv2d::new(d, "", [out.channels, inp, 1], init, self.bias.then_some(init)))
        } else {
            Proj::Linear(Linear::new(d, "", inp, out.channels, self.bias))
        }
    }

    fn forward(&self, proj: &Proj, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let x = first(inputs)?;
        let t = match &x {
            Value::Map(t) => t.clone(),
            _ => x.clone().flat(cx.ops)?,
        };
        let y = proj.forward(cx, &t)?;
        Ok(if matches!(x, Value::Map(_)) { Value::Map(y) } else { Value::Vec(y) })
    }
}
