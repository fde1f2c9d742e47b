//! Inference adjusters: NPE-LA, post-hoc LA, bilinear resize.

use super::loss::add_log_prior;
use crate::ctx::Ctx;
use crate::error::BurnError;
use crate::value::Act;
use burn::tensor::Tensor;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use npe_core::nodes::{NpeLaParams, PosthocLaParams, ResizeParams};

/// Bilinear resize (align_corners = false) of a `[N, C, H, W]` map.
pub fn resize_map(t: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = t.dims();
    if [h, w] == size {
        return t;
    }
    interpolate(t, InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false).with_output_size(size))
}

/// `npe_la`: `logits + (1/M) Σ_m (h_m − mean(h_m)) / s`; the mean is over classes (vectors) or
/// over (C, H, W) per image (maps, after resizing each h_m to the logits' size).
pub fn npe_la(_ctx: &Ctx, p: &NpeLaParams, logits: Act, pems: Act) -> Result<Act, BurnError> {
    let pems = pems.into_pems();
    let m = pems.len() as f64;
    let scale = 1.0 / (m * p.scale);
    match logits {
        Act::Vec(l) => {
            let mut adj: Option<Tensor<2>> = None;
            for h in pems {
                let h = h.into_flat();
                let centred = h.clone() - h.mean_dim(1);
                adj = Some(match adj {
                    Some(a) => a + centred,
                    None => centred,
                });
            }
            Ok(Act::Vec(l + adj.expect("at least one PEM") * scale))
        }
        Act::Map(l) => {
            let [n, c, hh, ww] = l.dims();
            let mut adj: Option<Tensor<4>> = None;
            for h in pems {
                let h = resize_map(h.into_map(), [hh, ww]);
                let mean = h.clone().reshape([n, c * hh * ww]).mean_dim(1).reshape([n, 1, 1, 1]);
                let centred = h - mean;
                adj = Some(match adj {
                    Some(a) => a + centred,
                    None => centred,
                });
            }
            Ok(Act::Map(l + adj.expect("at least one PEM") * scale))
        }
        other => Err(BurnError::Internal(format!("npe_la on {other:?}"))),
    }
}

/// `posthoc_la`: `logits − tau · log(prior)`.
pub fn posthoc_la(ctx: &Ctx, p: &PosthocLaParams, logits: Act) -> Result<Act, BurnError> {
    add_log_prior(ctx, logits, -p.tau)
}

/// `resize`: logits or each PEM map to the target size.
pub fn resize(_ctx: &Ctx, p: &ResizeParams, x: Act) -> Result<Act, BurnError> {
    let size = p.target().ok_or_else(|| BurnError::Internal("resize without a target size".into()))?;
    Ok(match x {
        Act::Map(t) => Act::Map(resize_map(t, size)),
        Act::Pems(v) => Act::Pems(v.into_iter().map(|h| Act::Map(resize_map(h.into_map(), size))).collect()),
        other => return Err(BurnError::Internal(format!("resize of {other:?}"))),
    })
}
