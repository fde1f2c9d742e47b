//! Dense (segmentation) backbones: a small U-Net and an FCN head on a ResNet encoder.

use super::adjust::resize_map;
use super::backbone::resnet_trunk;
use crate::ctx::NodeCtx;
use crate::error::Result;
use crate::value::Act;
use npe_core::nodes::{FcnResNetParams, UNetParams};
use tch::Tensor;

fn double_conv(nc: &NodeCtx, x: &Tensor, prefix: &str) -> Result<Tensor> {
    let h = nc.bn(&nc.conv(x, &format!("{prefix}conv1."), 1, 1)?, &format!("{prefix}bn1."))?.f_relu_()?;
    Ok(nc.bn(&nc.conv(&h, &format!("{prefix}conv2."), 1, 1)?, &format!("{prefix}bn2."))?.f_relu_()?)
}

/// `unet`: (max-pool, conv-BN-ReLU ×2) per level down; bilinear ×2 upsampling, concatenation
/// `[skip, up]`, conv-BN-ReLU ×2 per level up.
pub fn unet(nc: &NodeCtx, p: &UNetParams, x: Act) -> Result<Act> {
    let mut h = x.into_map();
    let mut skips = vec![];
    for l in 0..p.channels.len() {
        if l > 0 {
            h = h.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?;
        }
        h = double_conv(nc, &h, &format!("down.{l}."))?;
        skips.push(h.shallow_clone());
    }
    for l in (0..p.channels.len() - 1).rev() {
        let skip = &skips[l];
        let size = [skip.size()[2], skip.size()[3]];
        let up = resize_map(&h, size)?;
        h = double_conv(nc, &Tensor::f_cat(&[skip, &up], 1)?, &format!("up.{l}."))?;
    }
    Ok(Act::Map(h))
}

/// `fcn_resnet`: the CIFAR ResNet trunk (output stride 4) and an FCN head conv3×3-BN-ReLU.
pub fn fcn_resnet(nc: &NodeCtx, p: &FcnResNetParams, x: Act) -> Result<Act> {
    let h = resnet_trunk(nc, &x.into_map(), p.width, (p.depth - 2) / 6)?;
    Ok(Act::Map(nc.bn(&nc.conv(&h, "head.conv.", 1, 1)?, "head.bn.")?.f_relu_()?))
}
