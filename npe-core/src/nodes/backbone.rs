//! Backbone kinds: turn images (or vectors) into features.

use super::{NodeRef, Params, expect_role};
use crate::ir::{Role, Sig};
use serde::{Deserialize, Serialize};

/// Depths of the CIFAR ResNets (6n + 2 layers, n blocks per stage).
pub const RESNET_DEPTHS: [usize; 5] = [20, 32, 44, 56, 110];

fn default_hidden() -> Vec<usize> {
    vec![256, 256]
}
fn default_width() -> usize {
    16
}
fn default_cnn_channels() -> Vec<usize> {
    vec![32, 64, 128]
}
fn default_unet_channels() -> Vec<usize> {
    vec![16, 32, 64]
}
fn default_fcn_depth() -> usize {
    20
}
fn default_head_channels() -> usize {
    64
}

/// `mlp`: fully connected layers with ReLU; the input is flattened.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MlpParams {
    /// Input (usually `data`).
    pub input: NodeRef,
    /// Hidden layer widths; the last is the feature size. Default `[256, 256]`.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Batch normalisation after each hidden layer. Default false.
    #[serde(default)]
    pub batch_norm: bool,
}

impl MlpParams {
    pub(crate) fn infer(&self, input: &Sig) -> Result<Sig, String> {
        expect_role(input, &[Role::Image, Role::Features], "input")?;
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err("`hidden` needs at least one layer, all widths > 0".into());
        }
        Ok(Sig::vector(Role::Features, *self.hidden.last().unwrap()))
    }
}

/// `resnet_cifar`: the CIFAR ResNet of He et al. (3 stages, option-A shortcuts), global pooling.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetCifarParams {
    /// Input images.
    pub input: NodeRef,
    /// 20, 32, 44, 56 or 110.
    pub depth: usize,
    /// Channels of the first stage (16 in the paper); stages use width, 2×, 4×.
    #[serde(default = "default_width")]
    pub width: usize,
}

impl ResNetCifarParams {
    /// Residual blocks per stage.
    pub fn blocks_per_stage(&self) -> usize {
        (self.depth - 2) / 6
    }

    pub(crate) fn infer(&self, input: &Sig) -> Result<Sig, String> {
        check_depth(self.depth)?;
        let [h, w] = image_spatial(input)?;
        if h < 4 || w < 4 {
            return Err(format!("images of {h}×{w} are too small for resnet_cifar (two stride-2 stages need ≥ 4×4)"));
        }
        if self.width == 0 {
            return Err("`width` must be > 0".into());
        }
        Ok(Sig::vector(Role::Features, 4 * self.width))
    }
}

fn check_depth(depth: usize) -> Result<(), String> {
    if RESNET_DEPTHS.contains(&depth) {
        Ok(())
    } else {
        Err(format!("`depth: {depth}` is not a CIFAR ResNet depth; use one of 20, 32, 44, 56, 110"))
    }
}

fn image_spatial(input: &Sig) -> Result<[usize; 2], String> {
    expect_role(input, &[Role::Image, Role::Features], "input")?;
    input.spatial.ok_or_else(|| format!("this backbone needs image-shaped input [N, C, H, W], got {input}"))
}

/// `small_cnn`: conv3×3-BN-ReLU stages with 2×2 max-pooling between them, global average pooling.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmallCnnParams {
    /// Input images.
    pub input: NodeRef,
    /// Channels of each stage. Default `[32, 64, 128]`.
    #[serde(default = "default_cnn_channels")]
    pub channels: Vec<usize>,
}

impl SmallCnnParams {
    pub(crate) fn infer(&self, input: &Sig) -> Result<Sig, String> {
        let [h, w] = image_spatial(input)?;
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err("`channels` needs at least one stage, all > 0".into());
        }
        let shrink = 1usize << (self.channels.len() - 1);
        if h < shrink || w < shrink {
            return Err(format!("{h}×{w} images are too small for {} pooling stages", self.channels.len() - 1));
        }
        Ok(Sig::vector(Role::Features, *self.channels.last().unwrap()))
    }
}

/// `unet`: a small U-Net; dense features at the input resolution.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UNetParams {
    /// Input images.
    pub input: NodeRef,
    /// Channels per level, top to bottom. Default `[16, 32, 64]`.
    #[serde(default = "default_unet_channels")]
    pub channels: Vec<usize>,
}

impl UNetParams {
    pub(crate) fn infer(&self, input: &Sig) -> Result<Sig, String> {
        let [h, w] = image_spatial(input)?;
        if self.channels.len() < 2 || self.channels.contains(&0) {
            return Err("`channels` needs at least two levels, all > 0".into());
        }
        let f = 1usize << (self.channels.len() - 1);
        if h % f != 0 || w % f != 0 {
            return Err(format!(
                "image size {h}×{w} must be divisible by {f} for {} U-Net levels",
                self.channels.len()
            ));
        }
        Ok(Sig::map(Role::Features, self.channels[0], h, w))
    }
}

/// `fcn_resnet`: a CIFAR-style ResNet encoder (output stride 4) with an FCN head (conv3×3-BN-ReLU).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FcnResNetParams {
    /// Input images.
    pub input: NodeRef,
    /// Encoder depth (20, 32, 44, 56, 110). Default 20.
    #[serde(default = "default_fcn_depth")]
    pub depth: usize,
    /// Encoder width (first stage channels). Default 16.
    #[serde(default = "default_width")]
    pub width: usize,
    /// Channels of the FCN head's output (the decode feature `z`). Default 64.
    #[serde(default = "default_head_channels")]
    pub head_channels: usize,
}

impl FcnResNetParams {
    pub(crate) fn infer(&self, input: &Sig) -> Result<Sig, String> {
        check_depth(self.depth)?;
        let [h, w] = image_spatial(input)?;
        if h % 4 != 0 || w % 4 != 0 {
            return Err(format!("image size {h}×{w} must be divisible by 4 (encoder output stride)"));
        }
        Ok(Sig::map(Role::Features, self.head_channels, h / 4, w / 4))
    }
}

/// A backbone kind registered by a user crate (see [`crate::registry::CustomBackbone`]).
#[derive(Clone, Debug)]
pub struct CustomBackboneParams {
    /// The registered kind name.
    pub kind: String,
    /// Input.
    pub input: NodeRef,
    /// All other fields, for the user's code to deserialize.
    pub params: Params,
}
