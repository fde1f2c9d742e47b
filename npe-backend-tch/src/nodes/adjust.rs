//! Inference adjusters: NPE-LA, post-hoc LA, bilinear resize.

use super::loss::add_log_prior;
use crate::ctx::Ctx;
use crate::error::{Result, TchBackendError};
use crate::value::Act;
use npe_core::nodes::{NpeLaParams, PosthocLaParams, ResizeParams};
use tch::{Kind, Tensor};

/// Bilinear resize (align_corners = false) of a `[N, C, H, W]` map.
pub fn resize_map(t: &Tensor, size: [i64; 2]) -> Result<Tensor> {
    let s = t.size();
    if [s[2], s[3]] == size {
        return Ok(t.shallow_clone());
    }
    Ok(t.f_upsample_bilinear2d(size, false, None, None)?)
}

/// `npe_la`: `logits + (1/M) Σ_m (h_m − mean(h_m)) / s` (mean over classes, or over (C, H, W)
/// per image for maps after resizing h_m to the logits' size).
pub fn npe_la(_ctx: &Ctx, p: &NpeLaParams, logits: Act, pems: Act) -> Result<Act> {
    let pems = pems.into_pems();
    let scale = 1.0 / (pems.len() as f64 * p.scale);
    match logits {
        Act::Vec(l) => {
            let mut adj: Option<Tensor> = None;
            for h in pems {
                let h = h.into_flat();
                let centred = &h - h.f_mean_dim(1, true, Kind::Float)?;
                adj = Some(match adj {
                    Some(a) => a + centred,
                    None => centred,
                });
            }
            Ok(Act::Vec(l + adj.expect("at least one PEM") * scale))
        }
        Act::Map(l) => {
            let s = l.size();
            let mut adj: Option<Tensor> = None;
            for h in pems {
                let h = resize_map(&h.into_map(), [s[2], s[3]])?;
                let centred = &h - h.f_mean_dim([1i64, 2, 3].as_slice(), true, Kind::Float)?;
                adj = Some(match adj {
                    Some(a) => a + centred,
                    None => centred,
                });
            }
            Ok(Act::Map(l + adj.expect("at least one PEM") * scale))
        }
        other => Err(TchBackendError::Internal(format!("npe_la on {other:?}"))),
    }
}

/// `posthoc_la`: `logits − tau · log(prior)`.
pub fn posthoc_la(ctx: &Ctx, p: &PosthocLaParams, logits: Act) -> Result<Act> {
    add_log_prior(ctx, logits, -p.tau)
}

/// `resize`: logits or each PEM map to the target size.
pub fn resize(_ctx: &Ctx, p: &ResizeParams, x: Act) -> Result<Act> {
    let [h, w] = p.target().ok_or_else(|| TchBackendError::Internal("resize without a target size".into()))?;
    let size = [h as i64, w as i64];
    Ok(match x {
        Act::Map(t) => Act::Map(resize_map(&t, size)?),
        Act::Pems(v) => {
            Act::Pems(v.into_iter().map(|h| Ok(Act::Map(resize_map(&h.into_map(), size)?))).collect::<Result<_>>()?)
        }
        other => return Err(TchBackendError::Internal(format!("resize of {other:?}"))),
    })
}
