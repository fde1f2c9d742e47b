//! `small_cnn`: conv3×3-BN-ReLU stages with 2×2 max-pooling between them, global average pooling.

use crate::error::Result;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, first, image_spatial};
use crate::nn::{BatchNorm, Conv2d, torch_default};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

fn default_channels() -> Vec<usize> {
    vec![32, 64, 128]
}

/// `small_cnn` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmallCnn {
    /// Input images.
    pub input: NodeRef,
    /// Channels of each stage. Default `[32, 64, 128]`.
    #[serde(default = "default_channels")]
    pub channels: Vec<usize>,
}

impl NodeDef for SmallCnn {
    const KIND: &'static str = "small_cnn";
    const CATEGORY: Category = Category::Backbone;
    const SUMMARY: &'static str = "conv3×3-BN-ReLU stages with max-pooling, global pooling";
    type Lowered = Vec<(Conv2d, BatchNorm)>;

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig> {
        let [h, w] = image_spatial(&inputs[0])?;
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err("`channels` needs at least one stage, all > 0".into());
        }
        let shrink = 1usize << (self.channels.len() - 1);
        if h < shrink || w < shrink {
            return Err(format!("{h}×{w} images are too small for {} pooling stages", self.channels.len() - 1).into());
        }
        Ok(Sig::vector(Role::Features, *self.channels.last().unwrap()))
    }

    fn lower(&self, d: &mut Declare, inputs: &[Sig], _: &Sig) -> Self::Lowered {
        let mut cin = inputs[0].channels;
        let mut stages = vec![];
        for (i, &c) in self.channels.iter().enumerate() {
            let init = torch_default(cin * 9);
            let conv = Conv2d::new(d, &format!("convs.{i}"), [c, cin, 3], init, Some(init)).padding(1);
            stages.push((conv, BatchNorm::new(d, &format!("norms.{i}"), c)));
            cin = c;
        }
        stages
    }

    fn forward(&self, stages: &Self::Lowered, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let ops = cx.ops;
        let mut h = first(inputs)?.map(ops)?;
        for (i, (conv, norm)) in stages.iter().enumerate() {
            h = norm.forward(cx, &conv.forward(cx, &h)?)?;
            ops.relu_(&mut h)?;
            if i + 1 < stages.len() {
                h = ops.max_pool2d(&h, crate::tensor::PoolOpts::square(2))?;
            }
        }
        Ok(Value::Vec(ops.mean_dims(&h, &[2, 3], false)?))
    }
}
