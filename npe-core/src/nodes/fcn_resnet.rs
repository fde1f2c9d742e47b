//! `fcn_resnet`: a CIFAR-style ResNet encoder (output stride 4) with an FCN head (conv3×3-BN-ReLU).

use crate::error::Result;
use super::resnet_cifar::default_width;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, first, image_spatial};
use crate::nn::{BatchNorm, CifarResNet, Conv2d, check_depth, kaiming};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

fn default_depth() -> usize {
    20
}
fn default_head_channels() -> usize {
    64
}

/// `fcn_resnet` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FcnResNet {
    /// Input images.
    pub input: NodeRef,
    /// Encoder depth (20, 32, 44, 56, 110). Default 20.
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// Encoder width (first stage channels). Default 16.
    #[serde(default = "default_width")]
    pub width: usize,
    /// Channels of the FCN head's output (the decode feature `z`). Default 64.
    #[serde(default = "default_head_channels")]
    pub head_channels: usize,
}

impl NodeDef for FcnResNet {
    const KIND: &'static str = "fcn_resnet";
    const CATEGORY: Category = Category::Backbone;
    const SUMMARY: &'static str = "ResNet encoder (stride 4) with an FCN head, dense features";
    type Lowered = (CifarResNet, Conv2d, BatchNorm);

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig> {
        check_depth(self.depth)?;
        let [h, w] = image_spatial(&inputs[0])?;
        if h % 4 != 0 || w % 4 != 0 {
            return Err(format!("image size {h}×{w} must be divisible by 4 (encoder output stride)").into());
        }
        Ok(Sig::map(Role::Features, self.head_channels, h / 4, w / 4))
    }

    fn lower(&self, d: &mut Declare, inputs: &[Sig], _: &Sig) -> Self::Lowered {
        let trunk = CifarResNet::new(d, inputs[0].channels, self.width, (self.depth - 2) / 6);
        let c = trunk.out_channels();
        let mut head = d.scope("head");
        let conv = Conv2d::new(&mut head, "conv", [self.head_channels, c, 3], kaiming(c * 9), None).padding(1);
        let norm = BatchNorm::new(&mut head, "bn", self.head_channels);
        (trunk, conv, norm)
    }

    fn forward(&self, (trunk, conv, norm): &Self::Lowered, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let h = trunk.forward(cx, &first(inputs)?.map(cx.ops)?)?;
        let mut z = norm.forward(cx, &conv.forward(cx, &h)?)?;
        cx.ops.relu_(&mut z)?;
        Ok(Value::Map(z))
    }
}
