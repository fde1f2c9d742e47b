//! What the losses share: picking the true class, cross-entropy, adding the log-prior.

use crate::backend::ExecError;
use crate::kind::{Cx, Targets, Value};
use crate::tensor::{Ops, TResult, Tensor};

/// Mean over samples (or labelled pixels) of `f(values at the true class)`, `[1]`.
pub fn true_class_mean(
    cx: &Cx,
    per_class: &Value,
    f: impl Fn(&dyn Ops, Tensor) -> TResult<Tensor>,
) -> Result<Tensor, ExecError> {
    let ops = cx.ops;
    // Losses in float32 also under mixed precision.
    match (per_class, cx.targets()?) {
        (Value::Vec(t), Targets::Classes(y)) => Ok(ops.mean_all(&f(ops, ops.gather(&ops.float32(t)?, 1, y)?)?)?),
        (Value::Map(t), Targets::Pixels { index, valid, count }) => {
            let picked = ops.mul(&f(ops, ops.gather(&ops.float32(t)?, 1, index)?)?, valid)?;
            Ok(ops.mul_scalar(&ops.sum_all(&picked)?, 1.0 / (*count).max(1) as f64)?)
        }
        _ => Err(ExecError::Internal("loss input does not match the labels (vector vs map)".into())),
    }
}

/// Softmax cross-entropy of logits (per pixel for maps), `[1]`.
pub fn cross_entropy(cx: &Cx, logits: &Value) -> Result<Tensor, ExecError> {
    let lsm = logits.like(cx.ops.log_softmax(logits.tensor()?, 1)?)?;
    Ok(cx.ops.neg(&true_class_mean(cx, &lsm, |_, t| Ok(t))?)?)
}

/// `logits + tau · log(prior)` along the class axis.
pub fn add_log_prior(cx: &Cx, logits: Value, tau: f64) -> Result<Value, ExecError> {
    add_class_vector(cx.ops, logits, cx.log_prior(), tau)
}

/// `logits + scale · v`, a `[C]` vector broadcast over images (and pixels).
pub fn add_class_vector(ops: &dyn Ops, logits: Value, v: &Tensor, scale: f64) -> Result<Value, ExecError> {
    let v = ops.mul_scalar(v, scale)?;
    let c = ops.shape(&v)?[0];
    let t = logits.tensor()?;
    let shape: Vec<usize> = if matches!(logits, Value::Map(_)) { vec![1, c, 1, 1] } else { vec![1, c] };
    logits.like(ops.add(t, &ops.reshape(&v, &shape)?)?)
}
