//! Dense (segmentation) backbones: a small U-Net and an FCN head on a ResNet encoder.

use super::adjust::resize_map;
use super::backbone::resnet_trunk;
use crate::ctx::NodeCtx;
use crate::error::BurnError;
use crate::value::Act;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use npe_core::nodes::{FcnResNetParams, UNetParams};

fn double_conv(nc: &NodeCtx, x: Tensor<4>, prefix: &str) -> Result<Tensor<4>, BurnError> {
    let h = relu(nc.bn(nc.conv(x, &format!("{prefix}conv1."), 1, 1)?, &format!("{prefix}bn1."))?);
    Ok(relu(nc.bn(nc.conv(h, &format!("{prefix}conv2."), 1, 1)?, &format!("{prefix}bn2."))?))
}

/// `unet`: (max-pool, conv-BN-ReLU ×2) per level down; bilinear ×2 upsampling, concatenation
/// `[skip, up]`, conv-BN-ReLU ×2 per level up. Features at input resolution.
pub fn unet(nc: &NodeCtx, p: &UNetParams, x: Act) -> Result<Act, BurnError> {
    let mut h = x.into_map();
    let mut skips = vec![];
    for l in 0..p.channels.len() {
        if l > 0 {
            h = max_pool2d(h, MaxPoolOptions::new([2, 2]));
        }
        h = double_conv(nc, h, &format!("down.{l}."))?;
        skips.push(h.clone());
    }
    for l in (0..p.channels.len() - 1).rev() {
        let skip = skips[l].clone();
        let [_, _, sh, sw] = skip.dims();
        let up = resize_map(h, [sh, sw]);
        h = double_conv(nc, Tensor::cat(vec![skip, up], 1), &format!("up.{l}."))?;
    }
    Ok(Act::Map(h))
}

/// `fcn_resnet`: the CIFAR ResNet trunk (output stride 4) and an FCN head conv3×3-BN-ReLU.
pub fn fcn_resnet(nc: &NodeCtx, p: &FcnResNetParams, x: Act) -> Result<Act, BurnError> {
    let h = resnet_trunk(nc, x.into_map(), p.width, (p.depth - 2) / 6)?;
    Ok(Act::Map(relu(nc.bn(nc.conv(h, "head.conv.", 1, 1)?, "head.bn.")?)))
}
