//! The CIFAR ResNet trunk of He et al. (three stages of basic blocks, option-A shortcuts), as in
//! the reference PyTorch code: `conv1`, `bn1`, `layer{1,2,3}.{b}.{conv1,bn1,conv2,bn2}`.

use super::{BatchNorm, Conv2d, kaiming};
use crate::backend::ExecError;
use crate::error::Result;
use crate::kind::{Cx, Declare};
use crate::tensor::Tensor;

/// Depths of the CIFAR ResNets (6n + 2 layers, n blocks per stage).
pub const RESNET_DEPTHS: [usize; 5] = [20, 32, 44, 56, 110];

/// Error unless `depth` is a CIFAR ResNet depth.
pub fn check_depth(depth: usize) -> Result<()> {
    if RESNET_DEPTHS.contains(&depth) {
        Ok(())
    } else {
        Err(format!("`depth: {depth}` is not a CIFAR ResNet depth; use one of 20, 32, 44, 56, 110").into())
    }
}

#[derive(Clone, Debug)]
struct Block {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    /// Channels zero-padded on each side by the option-A shortcut (None: identity).
    shortcut_pad: Option<usize>,
}

/// conv-BN-ReLU, then three stages (width, 2×, 4× channels; strides 1, 2, 2); no pooling.
#[derive(Clone, Debug)]
pub struct CifarResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    blocks: Vec<Block>,
    out_channels: usize,
}

fn conv3(d: &mut Declare, name: &str, out: usize, inp: usize, stride: usize) -> Conv2d {
    Conv2d::new(d, name, [out, inp, 3], kaiming(inp * 9), None).stride(stride).padding(1)
}

impl CifarResNet {
    /// `blocks` basic blocks per stage on `in_ch` input channels.
    pub fn new(d: &mut Declare, in_ch: usize, width: usize, blocks: usize) -> Self {
        let conv1 = conv3(d, "conv1", width, in_ch, 1);
        let bn1 = BatchNorm::new(d, "bn1", width);
        let mut cin = width;
        let mut all = vec![];
        for (s, planes) in [width, 2 * width, 4 * width].into_iter().enumerate() {
            for b in 0..blocks {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let mut d = d.scope(&format!("layer{}", s + 1));
                let mut d = d.scope(&b.to_string());
                all.push(Block {
                    conv1: conv3(&mut d, "conv1", planes, cin, stride),
                    bn1: BatchNorm::new(&mut d, "bn1", planes),
                    conv2: conv3(&mut d, "conv2", planes, planes, 1),
                    bn2: BatchNorm::new(&mut d, "bn2", planes),
                    shortcut_pad: (stride != 1 || cin != planes).then(|| (planes - cin) / 2),
                });
                cin = planes;
            }
        }
        Self { conv1, bn1, blocks: all, out_channels: cin }
    }

    /// Channels of the output.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// `[N, C, H, W]` → `[N, 4·width, H/4, W/4]`.
    ///
    /// ReLUs and the residual addition run in place, as in torchvision: batch norm's backward
    /// needs its input, not its output, so overwriting the output is safe, and it saves one
    /// activation buffer per layer on backends that can (libtorch).
    pub fn forward(&self, cx: &mut Cx, x: &Tensor) -> Result<Tensor, ExecError> {
        let ops = cx.ops;
        let mut h = self.bn1.forward(cx, &self.conv1.forward(cx, x)?)?;
        ops.relu_(&mut h)?;
        for b in &self.blocks {
            let mut o = b.bn1.forward(cx, &b.conv1.forward(cx, &h)?)?;
            ops.relu_(&mut o)?;
            let mut o = b.bn2.forward(cx, &b.conv2.forward(cx, &o)?)?;
            let shortcut = match b.shortcut_pad {
                Some(pad) => ops.option_a_shortcut(&h, pad)?,
                None => h,
            };
            ops.add_(&mut o, &shortcut)?;
            ops.relu_(&mut o)?;
            h = o;
        }
        Ok(h)
    }
}
