//! Losses: cross-entropy, logit-adjusted CE, one-way logistic (per sample or per valid pixel),
//! with the same formulas as the burn backend.

use crate::ctx::{Ctx, Targets};
use crate::error::{Result, TchBackendError};
use crate::value::Act;
use npe_core::nodes::{CrossEntropyParams, LogitAdjustedCeParams, OneWayLogisticParams, Reduction};
use tch::{Kind, Tensor};

fn targets<'a>(ctx: &'a Ctx) -> Result<&'a Targets> {
    ctx.targets.as_ref().ok_or_else(|| TchBackendError::Internal("a loss ran without labels".into()))
}

/// Mean over samples (or valid pixels) of `f(values)` picked at the true class.
fn pick_true_mean(ctx: &Ctx, per_class: &Act, f: impl Fn(Tensor) -> Result<Tensor>) -> Result<Tensor> {
    match (per_class, targets(ctx)?) {
        (Act::Vec(t), Targets::Classes(y)) => Ok(f(t.f_gather(1, y, false)?)?.f_mean(Kind::Float)?),
        (Act::Map(t), Targets::Pixels { index, valid, count }) => {
            let picked = f(t.f_gather(1, index, false)?)? * valid;
            Ok(picked.f_sum(Kind::Float)? / (*count).max(1) as f64)
        }
        _ => Err(TchBackendError::Internal("loss input does not match the labels (vector vs map)".into())),
    }
}

fn ce(ctx: &Ctx, logits: &Act) -> Result<Tensor> {
    let lsm = match logits {
        Act::Vec(t) => Act::Vec(t.f_log_softmax(1, Kind::Float)?),
        Act::Map(t) => Act::Map(t.f_log_softmax(1, Kind::Float)?),
        other => {
            return Err(TchBackendError::Internal(format!("cross-entropy on {other:?}")));
        }
    };
    Ok(pick_true_mean(ctx, &lsm, Ok)?.f_neg()?)
}

/// `cross_entropy`.
pub fn cross_entropy(ctx: &Ctx, p: &CrossEntropyParams, logits: Act) -> Result<Act> {
    Ok(Act::Loss(ce(ctx, &logits)? * p.weight))
}

/// Add `tau · log(prior)` along the class axis.
pub(crate) fn add_log_prior(ctx: &Ctx, logits: Act, tau: f64) -> Result<Act> {
    let lp = &ctx.log_prior * tau;
    let c = lp.size()[0];
    Ok(match logits {
        Act::Vec(t) => Act::Vec(t + lp.f_reshape([1, c])?),
        Act::Map(t) => Act::Map(t + lp.f_reshape([1, c, 1, 1])?),
        other => {
            return Err(TchBackendError::Internal(format!("logit adjustment of {other:?}")));
        }
    })
}

/// `logit_adjusted_ce`: CE on `logits + tau·log(prior)`.
pub fn logit_adjusted_ce(ctx: &Ctx, p: &LogitAdjustedCeParams, logits: Act) -> Result<Act> {
    let adjusted = add_log_prior(ctx, logits, p.tau)?;
    Ok(Act::Loss(ce(ctx, &adjusted)? * p.weight))
}

/// Numerically stable softplus, the same formula as the burn backend:
/// `max(x, 0) + log(1 + exp(−|x|))`.
fn softplus(x: Tensor) -> Result<Tensor> {
    Ok(x.f_relu()? + x.f_abs()?.f_neg()?.f_exp()?.f_log1p()?)
}

/// `one_way_logistic`.
pub fn one_way_logistic(ctx: &Ctx, p: &OneWayLogisticParams, pems: Act) -> Result<Act> {
    let pems = pems.into_pems();
    let m = pems.len();
    let mut total: Option<Tensor> = None;
    for h in &pems {
        let l = pick_true_mean(ctx, h, softplus)?;
        total = Some(match total {
            Some(t) => t + l,
            None => l,
        });
    }
    let total = total.ok_or_else(|| TchBackendError::Internal("a pem node with no modules".into()))?;
    let scale = match p.reduction {
        Reduction::Mean => p.weight / m as f64,
        Reduction::Sum => p.weight,
    };
    Ok(Act::Loss(total * scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{ParamStore, download};
    use npe_core::nodes::NodeRef;

    const LOGITS: [f32; 12] = [1.0, 2.0, -1.0, 0.5, 0.0, 0.3, 2.0, 1.5, -2.0, 1.0, 0.7, -0.4];
    const LABELS: [i64; 4] = [0, 255, 2, 1];

    #[test]
    fn per_pixel_losses_skip_ignored_pixels() {
        let store = ParamStore::new(&[], &[], &Default::default(), tch::Device::Cpu).unwrap();
        let frozen = Default::default();
        let idx: Vec<i64> = LABELS.iter().map(|&l| if l == 255 { 0 } else { l }).collect();
        let valid: Vec<f32> = LABELS.iter().map(|&l| (l != 255) as u8 as f32).collect();
        let ctx = Ctx {
            store: &store,
            train: true,
            device: tch::Device::Cpu,
            targets: Some(Targets::Pixels {
                index: Tensor::from_slice(&idx).reshape([1, 1, 2, 2]),
                valid: Tensor::from_slice(&valid).reshape([1, 1, 2, 2]),
                count: 3,
            }),
            log_prior: Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)),
            frozen: &frozen,
        };
        let logits = Tensor::from_slice(&LOGITS).reshape([1, 3, 2, 2]);
        let (mut ce_want, mut owl_want) = (0.0, 0.0);
        for p in 0..4 {
            if LABELS[p] == 255 {
                continue;
            }
            let z: Vec<f64> = (0..3).map(|c| LOGITS[c * 4 + p] as f64).collect();
            let y = LABELS[p] as usize;
            ce_want += z.iter().map(|v| v.exp()).sum::<f64>().ln() - z[y];
            owl_want += (1.0 + z[y].exp()).ln();
        }
        let p = CrossEntropyParams { input: NodeRef::parse("l").unwrap(), weight: 1.0 };
        let Act::Loss(ce) = cross_entropy(&ctx, &p, Act::Map(logits.shallow_clone())).unwrap() else { panic!() };
        assert!((download(&ce).unwrap()[0] as f64 - ce_want / 3.0).abs() < 1e-5);
        let p = OneWayLogisticParams { input: NodeRef::parse("p").unwrap(), weight: 1.0, reduction: Reduction::Sum };
        let Act::Loss(owl) = one_way_logistic(&ctx, &p, Act::Pems(vec![Act::Map(logits)])).unwrap() else { panic!() };
        assert!((download(&owl).unwrap()[0] as f64 - owl_want / 3.0).abs() < 1e-5);
    }
}
