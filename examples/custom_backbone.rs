//! A backbone kind defined outside npe, without forking it: `conv_stack`, a plain stack of
//! conv3×3-ReLU-maxpool layers whose output is flattened. It is one `NodeDef` impl: its YAML
//! parameters, shape inference, parameter declaration and forward pass, written once against
//! npe's tensor operations, so it runs on every backend (burn, libtorch). The program registers
//! it and runs the normal `npe` command line:
//!
//! ```sh
//! cargo run --release --example custom_backbone -- check examples/custom_backbone.yaml
//! cargo run --release --example custom_backbone -- train examples/custom_backbone.yaml
//! ```

use npe::core::backend::ExecError;
use npe::core::kind::{Cx, Declare, NodeDef, Value, first, image_spatial};
use npe::core::nn::{Conv2d, kaiming};
use npe::core::tensor::PoolOpts;
use npe::core::types::{Category, InferCtx, Init, Input, NodeRef, Role, Sig};
use serde::Deserialize;
use std::process::ExitCode;

/// The kind's YAML fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvStack {
    /// Images.
    input: NodeRef,
    /// Output channels of each conv3×3 layer.
    channels: Vec<usize>,
}

impl NodeDef for ConvStack {
    const KIND: &'static str = "conv_stack";
    const CATEGORY: Category = Category::Backbone;
    const SUMMARY: &'static str = "conv3×3-ReLU-maxpool layers, flattened (example of a user-defined kind)";
    /// One convolution per layer (`convs.{i}.weight`, `convs.{i}.bias`).
    type Lowered = Vec<Conv2d>;

    fn check(&self) -> npe::core::error::Result<()> {
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err("`channels` needs at least one layer, all > 0".into());
        }
        Ok(())
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> npe::core::error::Result<Sig> {
        let [h, w] = image_spatial(&inputs[0])?;
        let shrink = 1 << self.channels.len();
        if h < shrink || w < shrink {
            npe::core::bail!("{h}×{w} images are too small for {} pooling layers", self.channels.len());
        }
        Ok(Sig::vector(Role::Features, self.channels.last().unwrap() * (h / shrink) * (w / shrink)))
    }

    fn lower(&self, d: &mut Declare, inputs: &[Sig], _: &Sig) -> Vec<Conv2d> {
        let mut cin = inputs[0].channels;
        let mut convs = vec![];
        for (i, &c) in self.channels.iter().enumerate() {
            convs.push(
                Conv2d::new(d, &format!("convs.{i}"), [c, cin, 3], kaiming(cin * 9), Some(Init::Zeros)).padding(1),
            );
            cin = c;
        }
        convs
    }

    fn forward(&self, convs: &Vec<Conv2d>, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let mut h = first(inputs)?.map(cx.ops)?;
        for conv in convs {
            h = cx.ops.max_pool2d(&cx.ops.relu(&conv.forward(cx, &h)?)?, PoolOpts::square(2))?;
        }
        Ok(Value::Vec(Value::Map(h).flat(cx.ops)?))
    }
}

fn main() -> ExitCode {
    let mut ext = npe::Extensions::default();
    ext.registry.register::<ConvStack>().expect("a new kind name");
    npe::cli::main_with(ext)
}
