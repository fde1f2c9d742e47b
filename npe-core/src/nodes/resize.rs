//! `resize`: bilinear resize of logits or PEM maps (align_corners = false).

use crate::error::Result;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, first};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

/// Target size of a `resize` node.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ResizeTo {
    /// `to: label` — the label map's size (the image size).
    Named(String),
    /// `to: [h, w]`.
    Size([usize; 2]),
}

fn default_to() -> ResizeTo {
    ResizeTo::Named("label".into())
}

/// `resize` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    /// A dense map (logits or PEM outputs).
    pub input: NodeRef,
    /// `label` (default) or `[h, w]`.
    #[serde(default = "default_to")]
    pub to: ResizeTo,
}

impl NodeDef for Resize {
    const KIND: &'static str = "resize";
    const CATEGORY: Category = Category::Adjuster;
    const SUMMARY: &'static str = "bilinear resize of a dense map (to the label size)";
    /// The output size.
    type Lowered = [usize; 2];

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], cx: &InferCtx) -> Result<Sig> {
        let input = &inputs[0];
        if !matches!(input.role, Role::Logits | Role::Pem { .. }) || !input.is_map() {
            return Err(format!("`input` must be a dense logits or PEM map, got {input}").into());
        }
        let target = match &self.to {
            ResizeTo::Size(s) => Some(*s),
            ResizeTo::Named(n) if n == "label" => cx.label_size,
            ResizeTo::Named(n) => return Err(format!("`to` must be `label` or [h, w], got `{n}`").into()),
        };
        let [h, w] = target.ok_or("`to: label` needs a data source with label maps")?;
        if h == 0 || w == 0 {
            return Err("`to` sizes must be > 0".into());
        }
        Ok(Sig { spatial: Some([h, w]), ..*input })
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], out: &Sig) -> [usize; 2] {
        out.spatial.expect("infer gives resize a spatial output")
    }

    fn forward(&self, size: &[usize; 2], cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let ops = cx.ops;
        let resize = |v: Value| -> Result<Value, ExecError> {
            let t = v.map(ops)?;
            let s = ops.shape(&t)?;
            Ok(Value::Map(if s[2..] == size[..] { t } else { ops.resize_bilinear(&t, *size)? }))
        };
        match first(inputs)? {
            Value::Pems(v) => Ok(Value::Pems(v.into_iter().map(resize).collect::<Result<_, _>>()?)),
            v => resize(v),
        }
    }
}
