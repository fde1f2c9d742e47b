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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::Targets;
    use crate::params::{ParamStore, to_vec};
    use burn::tensor::{Device, Int, TensorData};
    use npe_core::nodes::NodeRef;
    use std::cell::RefCell;

    /// logits `[1, 3, 2, 2]` (class-major), labels `[[0, ignore], [2, 1]]`.
    const LOGITS: [f32; 12] = [1.0, 2.0, -1.0, 0.5, 0.0, 0.3, 2.0, 1.5, -2.0, 1.0, 0.7, -0.4];
    const LABELS: [i64; 4] = [0, 255, 2, 1];

    fn with_ctx(f: impl FnOnce(&Ctx, Tensor<4>)) {
        let device = Device::flex();
        let store = ParamStore::new(&[], &[], &Default::default(), &device);
        let frozen = Default::default();
        let idx: Vec<i64> = LABELS.iter().map(|&l| if l == 255 { 0 } else { l }).collect();
        let valid: Vec<f32> = LABELS.iter().map(|&l| (l != 255) as u8 as f32).collect();
        let ctx = Ctx {
            store: &store,
            tensors: &[],
            train: true,
            device: device.clone(),
            bn: RefCell::new(vec![]),
            targets: Some(Targets::Pixels {
                index: Tensor::<4, Int>::from_data(TensorData::new(idx, [1, 1, 2, 2]), &device),
                valid: Tensor::<4>::from_data(TensorData::new(valid, [1, 1, 2, 2]), &device),
                count: 3,
            }),
            log_prior: Tensor::<1>::zeros([3], &device),
            frozen: &frozen,
        };
        f(&ctx, Tensor::<4>::from_data(TensorData::new(LOGITS.to_vec(), [1, 3, 2, 2]), &device));
    }

    /// The same losses computed by hand in f64.
    fn expected() -> (f64, f64) {
        let (mut ce, mut owl) = (0.0, 0.0);
        for p in 0..4 {
            if LABELS[p] == 255 {
                continue;
            }
            let z: Vec<f64> = (0..3).map(|c| LOGITS[c * 4 + p] as f64).collect();
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            let y = LABELS[p] as usize;
            ce += lse - z[y];
            owl += (1.0 + z[y].exp()).ln();
        }
        (ce / 3.0, owl / 3.0)
    }

    #[test]
    fn per_pixel_losses_skip_ignored_pixels() {
        let (ce_want, owl_want) = expected();
        with_ctx(|ctx, logits| {
            let p = CrossEntropyParams { input: NodeRef::parse("l").unwrap(), weight: 1.0 };
            let Act::Loss(ce) = cross_entropy(ctx, &p, Act::Map(logits.clone())).unwrap() else { panic!() };
            assert!((to_vec(&ce)[0] as f64 - ce_want).abs() < 1e-5, "{} vs {ce_want}", to_vec(&ce)[0]);
            let p =
                OneWayLogisticParams { input: NodeRef::parse("p").unwrap(), weight: 2.0, reduction: Reduction::Mean };
            let pems = Act::Pems(vec![Act::Map(logits.clone()), Act::Map(logits)]);
            let Act::Loss(owl) = one_way_logistic(ctx, &p, pems).unwrap() else { panic!() };
            // mean over 2 identical PEMs, times weight 2
            assert!((to_vec(&owl)[0] as f64 - 2.0 * owl_want).abs() < 1e-5);
        });
    }

    #[test]
    fn softplus_is_stable_for_large_inputs() {
        let device = Device::flex();
        let x = Tensor::<1>::from_data(TensorData::new(vec![-100.0f32, 0.0, 100.0], [3]), &device);
        let y = to_vec(&softplus(x));
        assert!(y[0] >= 0.0 && y[0] < 1e-30 && (y[1] - 2f32.ln()).abs() < 1e-6 && (y[2] - 100.0).abs() < 1e-4, "{y:?}");
    }
}
