//! Losses: cross-entropy, logit-adjusted CE, one-way logistic (per sample or per valid pixel).

use crate::ctx::{Ctx, Targets};
use crate::error::BurnError;
use crate::value::Act;
use burn::tensor::Tensor;
use burn::tensor::activation::{log_softmax, relu};
use npe_core::nodes::{CrossEntropyParams, LogitAdjustedCeParams, OneWayLogisticParams, Reduction};

fn targets<'a>(ctx: &'a Ctx) -> Result<&'a Targets, BurnError> {
    ctx.targets.as_ref().ok_or_else(|| BurnError::Internal("a loss ran without labels".into()))
}

/// Mean over samples (or valid pixels) of `values` picked at the true class, `[1]`.
fn pick_true_mean(
    ctx: &Ctx,
    per_class: Act,
    f: impl Fn(Tensor<4>) -> Tensor<4>,
    g: impl Fn(Tensor<2>) -> Tensor<2>,
) -> Result<Tensor<1>, BurnError> {
    match (per_class, targets(ctx)?) {
        (Act::Vec(t), Targets::Classes(y)) => Ok(g(t.gather(1, y.clone())).mean()),
        (Act::Map(t), Targets::Pixels { index, valid, count }) => {
            let picked = f(t.gather(1, index.clone())) * valid.clone();
            Ok(picked.sum() / (*count).max(1) as f64)
        }
        _ => Err(BurnError::Internal("loss input does not match the labels (vector vs map)".into())),
    }
}

/// Softmax cross-entropy, `[1]`.
fn ce(ctx: &Ctx, logits: Act) -> Result<Tensor<1>, BurnError> {
    let lsm = match logits {
        Act::Vec(t) => Act::Vec(log_softmax(t, 1)),
        Act::Map(t) => Act::Map(log_softmax(t, 1)),
        other => return Err(BurnError::Internal(format!("cross-entropy on {other:?}"))),
    };
    Ok(pick_true_mean(ctx, lsm, |t| t, |t| t)?.neg())
}

/// `cross_entropy`.
pub fn cross_entropy(ctx: &Ctx, p: &CrossEntropyParams, logits: Act) -> Result<Act, BurnError> {
    Ok(Act::Loss(ce(ctx, logits)? * p.weight))
}

/// Add `tau · log(prior)` along the class axis.
pub(crate) fn add_log_prior(ctx: &Ctx, logits: Act, tau: f64) -> Result<Act, BurnError> {
    let lp = ctx.log_prior.clone() * tau;
    let c = lp.dims()[0];
    Ok(match logits {
        Act::Vec(t) => Act::Vec(t + lp.reshape([1, c])),
        Act::Map(t) => Act::Map(t + lp.reshape([1, c, 1, 1])),
        other => {
            return Err(BurnError::Internal(format!("logit adjustment of {other:?}")));
        }
    })
}

/// `logit_adjusted_ce`: CE on `logits + tau·log(prior)`.
pub fn logit_adjusted_ce(ctx: &Ctx, p: &LogitAdjustedCeParams, logits: Act) -> Result<Act, BurnError> {
    let adjusted = add_log_prior(ctx, logits, p.tau)?;
    Ok(Act::Loss(ce(ctx, adjusted)? * p.weight))
}

/// Numerically stable softplus: `max(x, 0) + log(1 + exp(−|x|))`.
fn softplus<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    relu(x.clone()) + x.abs().neg().exp().log1p()
}

/// `one_way_logistic`: softplus of each PEM's true-class output, averaged over samples / valid
/// pixels, combined over PEMs by `reduction`, times `weight`.
pub fn one_way_logistic(ctx: &Ctx, p: &OneWayLogisticParams, pems: Act) -> Result<Act, BurnError> {
    let pems = pems.into_pems();
    let m = pems.len();
    let mut total: Option<Tensor<1>> = None;
    for h in pems {
        let l = pick_true_mean(ctx, h, softplus, softplus)?;
        total = Some(match total {
            Some(t) => t + l,
            None => l,
        });
    }
    let total = total.ok_or_else(|| BurnError::Internal("a pem node with no modules".into()))?;
    let scale = match p.reduction {
        Reduction::Mean => p.weight / m as f64,
        Reduction::Sum => p.weight,
    };
    Ok(Act::Loss(total * scale))
}
