//! `unet`: a small U-Net; dense features at the input resolution.

use crate::error::Result;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, first, image_spatial};
use crate::nn::{BatchNorm, Conv2d, kaiming};
use crate::tensor::{Precision, Tensor};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

fn default_channels() -> Vec<usize> {
    vec![16, 32, 64]
}

/// `unet` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UNet {
    /// Input images.
    pub input: NodeRef,
    /// Channels per level, top to bottom. Default `[16, 32, 64]`.
    #[serde(default = "default_channels")]
    pub channels: Vec<usize>,
}

/// conv-BN-ReLU ×2 (`conv1`, `bn1`, `conv2`, `bn2`).
#[derive(Clone, Debug)]
pub struct DoubleConv([(Conv2d, BatchNorm); 2]);

impl DoubleConv {
    fn new(d: &mut Declare, inp: usize, out: usize) -> Self {
        let mut layer = |j: usize, i: usize| {
            let conv = Conv2d::new(d, &format!("conv{j}"), [out, i, 3], kaiming(i * 9), None).padding(1);
            (conv, BatchNorm::new(d, &format!("bn{j}"), out))
        };
        let first = layer(1, inp);
        Self([first, layer(2, out)])
    }

    fn forward(&self, cx: &mut Cx, x: &Tensor) -> Result<Tensor, ExecError> {
        let mut h = x.clone();
        for (conv, norm) in &self.0 {
            h = norm.forward(cx, &conv.forward(cx, &h)?)?;
            cx.ops.relu_(&mut h)?;
        }
        Ok(h)
    }
}

/// Lowered U-Net: one block per level down, one per level up.
#[derive(Clone, Debug)]
pub struct UNetLayers {
    down: Vec<DoubleConv>,
    up: Vec<DoubleConv>,
}

impl NodeDef for UNet {
    const KIND: &'static str = "unet";
    const CATEGORY: Category = Category::Backbone;
    const SUMMARY: &'static str = "small U-Net, dense features at input resolution";
    type Lowered = UNetLayers;

    /// Channels-last on libtorch, measured against the plain layout (results/bench_speed.md):
    /// 1.27–1.28× in fp32, 1.18–1.21× in bf16 on seg-digits at batch 32. Its weights differ from
    /// the plain layout's where the summation order matters: the first batch norm's bias gets a
    /// gradient that nearly cancels. After one step that bias differs by 3.2e-3 (relative)
    /// between the layouts, and by 5.7e-4 between channels-last on 1 and on 2 threads; after 10
    /// steps plain on 1 against 2 threads differs by 9.7e-4 there. Same thread count, same bytes.
    fn prefers_channels_last(&self, precision: Precision) -> bool {
        matches!(precision, Precision::Fp32 | Precision::Bf16)
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig> {
        let [h, w] = image_spatial(&inputs[0])?;
        if self.channels.len() < 2 || self.channels.contains(&0) {
            return Err("`channels` needs at least two levels, all > 0".into());
        }
        let f = 1usize << (self.channels.len() - 1);
        if h % f != 0 || w % f != 0 {
            return Err(format!(
                "image size {h}×{w} must be divisible by {f} for {} U-Net levels",
                self.channels.len()
            ).into());
        }
        Ok(Sig::map(Role::Features, self.channels[0], h, w))
    }

    /// Levels down: `down.{l}`; levels up (bottom first): `up.{l}` on `[skip, upsampled]`.
    fn lower(&self, d: &mut Declare, inputs: &[Sig], _: &Sig) -> UNetLayers {
        let ch = &self.channels;
        let mut cin = inputs[0].channels;
        let mut down = vec![];
        for (l, &c) in ch.iter().enumerate() {
            down.push(DoubleConv::new(&mut d.scope(&format!("down.{l}")), cin, c));
            cin = c;
        }
        let up = (0..ch.len() - 1)
            .rev()
            .map(|l| DoubleConv::new(&mut d.scope(&format!("up.{l}")), ch[l] + ch[l + 1], ch[l]))
            .collect();
        UNetLayers { down, up }
    }

    fn forward(&self, net: &UNetLayers, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let ops = cx.ops;
        let mut h = first(inputs)?.map(ops)?;
        let mut skips = vec![];
        for (l, block) in net.down.iter().enumerate() {
            if l > 0 {
                h = ops.max_pool2d(&h, crate::tensor::PoolOpts::square(2))?;
            }
            h = block.forward(cx, &h)?;
            skips.push(h.clone());
        }
        for (block, skip) in net.up.iter().zip(skips.iter().rev().skip(1)) {
            let s = ops.shape(skip)?;
            let up = ops.resize_bilinear(&h, [s[2], s[3]])?;
            h = block.forward(cx, &ops.cat(&[skip.clone(), up], 1)?)?;
        }
        Ok(Value::Map(h))
    }
}
