//! `resnet_cifar`: the CIFAR ResNet of He et al. (3 stages, option-A shortcuts), global pooling.

use crate::tensor::Precision;
use crate::error::Result;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, first, image_spatial};
use crate::nn::{CifarResNet, check_depth};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

pub(crate) fn default_width() -> usize {
    16
}

/// `resnet_cifar` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetCifar {
    /// Input images.
    pub input: NodeRef,
    /// 20, 32, 44, 56 or 110.
    pub depth: usize,
    /// Channels of the first stage (16 in the paper); stages use width, 2×, 4×.
    #[serde(default = "default_width")]
    pub width: usize,
}

impl NodeDef for ResNetCifar {
    const KIND: &'static str = "resnet_cifar";
    const CATEGORY: Category = Category::Backbone;

    /// Channels-last on libtorch, measured against the plain layout (results/bench_speed.md):
    /// ResNet-32 + 1 PEM at batch 128: 1.39× in fp32; in bf16 1.13× (2 rounds) and 1.07×
    /// (4 rounds), after 0.95× in one round before. fp16 (CUDA) was not measured.
    fn prefers_channels_last(&self, precision: Precision) -> bool {
        matches!(precision, Precision::Fp32 | Precision::Bf16)
    }
    const SUMMARY: &'static str = "CIFAR ResNet-20/32/44/56/110, option-A shortcuts, global pooling";
    type Lowered = CifarResNet;

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig> {
        check_depth(self.depth)?;
        let [h, w] = image_spatial(&inputs[0])?;
        if h < 4 || w < 4 {
            return Err(format!("images of {h}×{w} are too small for resnet_cifar (two stride-2 stages need ≥ 4×4)").into());
        }
        if self.width == 0 {
            return Err("`width` must be > 0".into());
        }
        Ok(Sig::vector(Role::Features, 4 * self.width))
    }

    fn lower(&self, d: &mut Declare, inputs: &[Sig], _: &Sig) -> CifarResNet {
        CifarResNet::new(d, inputs[0].channels, self.width, (self.depth - 2) / 6)
    }

    fn forward(&self, trunk: &CifarResNet, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let x = first(inputs)?.map(cx.ops)?;
        let h = trunk.forward(cx, &x)?;
        Ok(Value::Vec(cx.ops.mean_dims(&h, &[2, 3], false)?))
    }
}
