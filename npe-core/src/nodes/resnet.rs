//! `resnet`: the ImageNet ResNets and ResNeXts of torchvision (bottleneck blocks, stride on the
//! 3×3 convolution as in torchvision's v1.5), with torchvision's parameter names and shapes
//! (`conv1`, `bn1`, `layer1.0.conv1`, ..., `layer4.2.bn3`, `layer1.0.downsample.{0,1}`), so
//! ImageNet weights converted to safetensors load with `train.init_from` (prefix the names with
//! the node's name and drop `fc.*`). Global average pooling; the classifier is a `linear` node.

use crate::tensor::Precision;
use crate::error::Result;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, first, image_spatial};
use crate::nn::{BatchNorm, Conv2d};
use crate::tensor::{PoolOpts, Tensor};
use crate::types::{Category, InferCtx, Init, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

/// A torchvision architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// ResNet-50: [3, 4, 6, 3] bottlenecks.
    Resnet50,
    /// ResNet-101: [3, 4, 23, 3].
    Resnet101,
    /// ResNet-152: [3, 8, 36, 3].
    Resnet152,
    /// ResNeXt-50 32×4d: [3, 4, 6, 3], 32 groups of width 4.
    Resnext50_32x4d,
    /// ResNeXt-101 32×8d: [3, 4, 23, 3], 32 groups of width 8.
    Resnext101_32x8d,
}

impl Arch {
    /// (blocks per stage, groups, width per group).
    fn shape(self) -> ([usize; 4], usize, usize) {
        match self {
            Arch::Resnet50 => ([3, 4, 6, 3], 1, 64),
            Arch::Resnet101 => ([3, 4, 23, 3], 1, 64),
            Arch::Resnet152 => ([3, 8, 36, 3], 1, 64),
            Arch::Resnext50_32x4d => ([3, 4, 6, 3], 32, 4),
            Arch::Resnext101_32x8d => ([3, 4, 23, 3], 32, 8),
        }
    }
}

/// The first layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stem {
    /// ImageNet: conv 7×7 stride 2, max-pool 3×3 stride 2 (output stride 32).
    #[default]
    Imagenet,
    /// Small images (e.g. 32×32): conv 3×3 stride 1, no max-pool (output stride 8). The
    /// `conv1` weight is then `[64, C, 3, 3]`, so ImageNet's stem does not load.
    Small,
}

/// `resnet` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResNet {
    /// Images.
    pub input: NodeRef,
    /// `resnet50`, `resnet101`, `resnet152`, `resnext50_32x4d` or `resnext101_32x8d`.
    pub arch: Arch,
    /// `imagenet` (default) or `small`.
    #[serde(default)]
    pub stem: Stem,
}

/// A bottleneck block: 1×1 reduce, 3×3 (grouped, strided), 1×1 expand; projection shortcut.
#[derive(Clone, Debug)]
pub struct Bottleneck {
    convs: [Conv2d; 3],
    norms: [BatchNorm; 3],
    downsample: Option<(Conv2d, BatchNorm)>,
}

/// The lowered network.
#[derive(Clone, Debug)]
pub struct Net {
    conv1: Conv2d,
    bn1: BatchNorm,
    pool: bool,
    blocks: Vec<Bottleneck>,
}

/// torchvision's init: Kaiming normal, fan-out mode, for every convolution.
fn conv(d: &mut Declare, name: &str, [out, inp, k]: [usize; 3], groups: usize, stride: usize) -> Conv2d {
    // torchvision: kaiming_normal_(mode="fan_out") uses out · k · k (groups do not change it).
    let fan_out = out * k * k;
    Conv2d::grouped(d, name, [out, inp, k], groups, Init::KaimingNormal { fan_in: fan_out }, None)
        .stride(stride)
        .padding(k / 2)
}

impl NodeDef for ResNet {
    const KIND: &'static str = "resnet";
    const CATEGORY: Category = Category::Backbone;

    /// Channels-last on libtorch, measured against the plain layout (results/bench_speed.md):
    /// ResNet-50 at 224, batch 16: 1.17× in fp32, 0.99× in bf16 (the other archs share the kind, unmeasured).
    fn prefers_channels_last(&self, precision: Precision) -> bool {
        precision == Precision::Fp32
    }
    const SUMMARY: &'static str = "torchvision ResNet-50/101/152, ResNeXt-50/101 (torchvision names), global pooling";
    type Lowered = Net;

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig> {
        let [h, w] = image_spatial(&inputs[0])?;
        let stride = if self.stem == Stem::Imagenet { 32 } else { 8 };
        if h < stride || w < stride {
            return Err(format!("{h}×{w} images are smaller than the network's output stride {stride} (try `stem: small`)").into());
        }
        Ok(Sig::vector(Role::Features, 2048))
    }

    fn lower(&self, d: &mut Declare, inputs: &[Sig], _: &Sig) -> Net {
        let (blocks, groups, width_per_group) = self.arch.shape();
        let (conv1, pool) = match self.stem {
            Stem::Imagenet => (conv(d, "conv1", [64, inputs[0].channels, 7], 1, 2), true),
            Stem::Small => (conv(d, "conv1", [64, inputs[0].channels, 3], 1, 1), false),
        };
        let bn1 = BatchNorm::new(d, "bn1", 64);
        let mut inplanes = 64;
        let mut all = vec![];
        for (s, &n) in blocks.iter().enumerate() {
            let planes = 64 << s;
            let width = planes * width_per_group / 64 * groups;
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let mut d = d.scope(&format!("layer{}", s + 1));
                let mut d = d.scope(&b.to_string());
                let convs = [
                    conv(&mut d, "conv1", [width, inplanes, 1], 1, 1),
                    conv(&mut d, "conv2", [width, width, 3], groups, stride),
                    conv(&mut d, "conv3", [planes * 4, width, 1], 1, 1),
                ];
                let norms = [
                    BatchNorm::new(&mut d, "bn1", width),
                    BatchNorm::new(&mut d, "bn2", width),
                    BatchNorm::new(&mut d, "bn3", planes * 4),
                ];
                let downsample = (b == 0).then(|| {
                    let mut d = d.scope("downsample");
                    (conv(&mut d, "0", [planes * 4, inplanes, 1], 1, stride), BatchNorm::new(&mut d, "1", planes * 4))
                });
                all.push(Bottleneck { convs, norms, downsample });
                inplanes = planes * 4;
            }
        }
        Net { conv1, bn1, pool, blocks: all }
    }

    fn forward(&self, net: &Net, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let ops = cx.ops;
        let mut h = net.bn1.forward(cx, &net.conv1.forward(cx, &first(inputs)?.map(ops)?)?)?;
        ops.relu_(&mut h)?;
        if net.pool {
            h = ops.max_pool2d(&h, PoolOpts { kernel: 3, stride: 2, padding: 1 })?;
        }
        for b in &net.blocks {
            h = bottleneck(b, cx, h)?;
        }
        Ok(Value::Vec(ops.mean_dims(&h, &[2, 3], false)?))
    }
}

fn bottleneck(b: &Bottleneck, cx: &mut Cx, x: Tensor) -> Result<Tensor, ExecError> {
    let ops = cx.ops;
    let mut h = x.clone();
    for (i, (conv, norm)) in b.convs.iter().zip(&b.norms).enumerate() {
        h = norm.forward(cx, &conv.forward(cx, &h)?)?;
        if i < 2 {
            ops.relu_(&mut h)?;
        }
    }
    let shortcut = match &b.downsample {
        Some((conv, norm)) => norm.forward(cx, &conv.forward(cx, &x)?)?,
        None => x,
    };
    ops.add_(&mut h, &shortcut)?;
    ops.relu_(&mut h)?;
    Ok(h)
}
