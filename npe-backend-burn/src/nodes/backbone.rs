//! Backbones: mlp, resnet_cifar (option-A shortcuts), small_cnn.

use crate::ctx::{NodeCtx, option_a_shortcut};
use crate::error::BurnError;
use crate::value::Act;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::module::{adaptive_avg_pool2d, max_pool2d};
use burn::tensor::ops::MaxPoolOptions;
use npe_core::nodes::{MlpParams, ResNetCifarParams, SmallCnnParams};

/// `mlp`: flatten, then linear (+ BN) + ReLU per hidden layer.
pub fn mlp(nc: &NodeCtx, p: &MlpParams, x: Act) -> Result<Act, BurnError> {
    let mut h = x.into_flat();
    for i in 0..p.hidden.len() {
        h = nc.linear(h, &format!("layers.{i}."))?;
        if p.batch_norm {
            h = nc.bn(h, &format!("norms.{i}."))?;
        }
        h = relu(h);
    }
    Ok(Act::Vec(h))
}

/// The CIFAR ResNet trunk (conv-BN-ReLU, three stages of basic blocks), no pooling.
pub fn resnet_trunk(nc: &NodeCtx, x: Tensor<4>, width: usize, blocks: usize) -> Result<Tensor<4>, BurnError> {
    let mut h = relu(nc.bn(nc.conv(x, "conv1.", 1, 1)?, "bn1.")?);
    let mut cin = width;
    for (s, planes) in [width, 2 * width, 4 * width].into_iter().enumerate() {
        for b in 0..blocks {
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            let p = format!("layer{}.{b}.", s + 1);
            let o = relu(nc.bn(nc.conv(h.clone(), &format!("{p}conv1."), stride, 1)?, &format!("{p}bn1."))?);
            let o = nc.bn(nc.conv(o, &format!("{p}conv2."), 1, 1)?, &format!("{p}bn2."))?;
            let shortcut = if stride != 1 || cin != planes { option_a_shortcut(h, cin, planes) } else { h };
            h = relu(o + shortcut);
            cin = planes;
        }
    }
    Ok(h)
}

fn global_pool(h: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = h.dims();
    adaptive_avg_pool2d(h, [1, 1]).reshape([n, c])
}

/// `resnet_cifar`: trunk + global average pooling.
pub fn resnet_cifar(nc: &NodeCtx, p: &ResNetCifarParams, x: Act) -> Result<Act, BurnError> {
    let h = resnet_trunk(nc, x.into_map(), p.width, p.blocks_per_stage())?;
    Ok(Act::Vec(global_pool(h)))
}

/// `small_cnn`: conv3×3(+bias)-BN-ReLU stages, 2×2 max-pooling between, global pooling.
pub fn small_cnn(nc: &NodeCtx, p: &SmallCnnParams, x: Act) -> Result<Act, BurnError> {
    let mut h = x.into_map();
    for i in 0..p.channels.len() {
        h = relu(nc.bn(nc.conv(h, &format!("convs.{i}."), 1, 1)?, &format!("norms.{i}."))?);
        if i + 1 < p.channels.len() {
            h = max_pool2d(h, MaxPoolOptions::new([2, 2]));
        }
    }
    Ok(Act::Vec(global_pool(h)))
}
