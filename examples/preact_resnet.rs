//! A second user-defined backbone, trained with AdamW: `preact_resnet`, the pre-activation
//! ResNet of He et al. (2016, "Identity Mappings in Deep Residual Networks"): each block is
//! BN-ReLU-conv3×3-BN-ReLU-conv3×3 with an identity shortcut (a 1×1 projection of the
//! pre-activated input where the shape changes), and a final BN-ReLU before global pooling.
//! One `NodeDef` impl, no backend code: it trains on burn and on libtorch alike.
//!
//! ```sh
//! cargo run --release --example preact_resnet -- train examples/preact_resnet.yaml
//! cargo run --release --features tch --example preact_resnet -- train examples/preact_resnet.yaml --backend tch
//! ```

use npe::core::backend::ExecError;
use npe::core::kind::{Cx, Declare, NodeDef, Value, first, image_spatial};
use npe::core::nn::{BatchNorm, Conv2d, kaiming};
use npe::core::tensor::Tensor;
use npe::core::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::Deserialize;
use std::process::ExitCode;

fn default_blocks() -> Vec<usize> {
    vec![2, 2, 2]
}
fn default_width() -> usize {
    16
}

/// The kind's YAML fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreActResNet {
    /// Images.
    input: NodeRef,
    /// Blocks per stage; stage s has `width · 2^s` channels and (s > 0) starts with stride 2.
    #[serde(default = "default_blocks")]
    blocks: Vec<usize>,
    /// Channels of the first stage.
    #[serde(default = "default_width")]
    width: usize,
}

/// One pre-activation block.
#[derive(Clone, Debug)]
struct Block {
    bn1: BatchNorm,
    conv1: Conv2d,
    bn2: BatchNorm,
    conv2: Conv2d,
    projection: Option<Conv2d>,
}

impl Block {
    fn forward(&self, cx: &mut Cx, x: &Tensor) -> Result<Tensor, ExecError> {
        let ops = cx.ops;
        let pre = ops.relu(&self.bn1.forward(cx, x)?)?;
        let shortcut = match &self.projection {
            Some(p) => p.forward(cx, &pre)?,
            None => x.clone(),
        };
        let h = self.conv1.forward(cx, &pre)?;
        let h = ops.relu(&self.bn2.forward(cx, &h)?)?;
        let mut out = self.conv2.forward(cx, &h)?;
        ops.add_(&mut out, &shortcut)?;
        Ok(out)
    }
}

/// The lowered network: stem, blocks, final norm.
#[derive(Clone, Debug)]
struct Net {
    stem: Conv2d,
    blocks: Vec<Block>,
    norm: BatchNorm,
}

fn conv(d: &mut Declare, name: &str, out: usize, inp: usize, k: usize, stride: usize) -> Conv2d {
    Conv2d::new(d, name, [out, inp, k], kaiming(inp * k * k), None).stride(stride).padding(k / 2)
}

impl NodeDef for PreActResNet {
    const KIND: &'static str = "preact_resnet";
    const CATEGORY: Category = Category::Backbone;
    const SUMMARY: &'static str = "pre-activation ResNet (He et al. 2016), global pooling (example of a user kind)";
    type Lowered = Net;

    fn check(&self) -> npe::core::error::Result<()> {
        if self.blocks.is_empty() || self.blocks.contains(&0) || self.width == 0 {
            return Err("`blocks` needs at least one stage of ≥ 1 block, and `width` must be > 0".into());
        }
        Ok(())
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> npe::core::error::Result<Sig> {
        let [h, w] = image_spatial(&inputs[0])?;
        let shrink = 1 << (self.blocks.len() - 1);
        if h < shrink || w < shrink {
            npe::core::bail!("{h}×{w} images are too small for {} stride-2 stages", self.blocks.len() - 1);
        }
        Ok(Sig::vector(Role::Features, self.width << (self.blocks.len() - 1)))
    }

    /// `stem`, `stages.{s}.{b}.{bn1,conv1,bn2,conv2,projection}`, `norm`.
    fn lower(&self, d: &mut Declare, inputs: &[Sig], _: &Sig) -> Net {
        let stem = conv(d, "stem", self.width, inputs[0].channels, 3, 1);
        let mut cin = self.width;
        let mut blocks = vec![];
        for (s, &n) in self.blocks.iter().enumerate() {
            let planes = self.width << s;
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let mut d = d.scope(&format!("stages.{s}.{b}"));
                blocks.push(Block {
                    bn1: BatchNorm::new(&mut d, "bn1", cin),
                    conv1: conv(&mut d, "conv1", planes, cin, 3, stride),
                    bn2: BatchNorm::new(&mut d, "bn2", planes),
                    conv2: conv(&mut d, "conv2", planes, planes, 3, 1),
                    projection: (stride != 1 || cin != planes)
                        .then(|| conv(&mut d, "projection", planes, cin, 1, stride)),
                });
                cin = planes;
            }
        }
        Net { stem, blocks, norm: BatchNorm::new(d, "norm", cin) }
    }

    fn forward(&self, net: &Net, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let mut h = net.stem.forward(cx, &first(inputs)?.map(cx.ops)?)?;
        for block in &net.blocks {
            h = block.forward(cx, &h)?;
        }
        let h = cx.ops.relu(&net.norm.forward(cx, &h)?)?;
        Ok(Value::Vec(cx.ops.mean_dims(&h, &[2, 3], false)?))
    }
}

fn main() -> ExitCode {
    let mut ext = npe::Extensions::default();
    ext.registry.register::<PreActResNet>().expect("a new kind name");
    npe::cli::main_with(ext)
}
