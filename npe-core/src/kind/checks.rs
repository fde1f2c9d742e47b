//! Signature checks shared by node kinds.

use crate::error::Result;
use crate::types::{InferCtx, Role, Sig, Task};

/// Error unless `sig` has one of `roles`.
pub fn expect_role(sig: &Sig, roles: &[Role], port: &str) -> Result<()> {
    if roles.contains(&sig.role) {
        return Ok(());
    }
    let want: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    Err(format!("`{port}` must be {}, got {sig}", want.join(" or ")).into())
}

/// Dense losses and metrics compare maps with the label maps pixel by pixel: sizes must match.
pub fn check_label_size(sig: &Sig, ctx: &InferCtx, port: &str) -> Result<()> {
    match (sig.spatial, ctx.label_size) {
        (Some(s), Some(l)) if s != l => Err(format!(
            "`{port}` is {}×{} but the labels are {}×{}: add a `resize` node (`kind: resize`, to the label size) and use it here",
            s[0], s[1], l[0], l[1]
        ).into()),
        _ => Ok(()),
    }
}

/// Classification wants vector outputs, segmentation dense maps.
pub fn check_task_shape(sig: &Sig, ctx: &InferCtx) -> Result<()> {
    match (ctx.task, sig.is_map()) {
        (Task::Classification, true) => Err(format!(
            "dense output {sig} in a classification pipeline; end the backbone with global pooling or set `task: segmentation`"
        ).into()),
        (Task::Segmentation, false) => {
            Err(format!("vector output {sig} in a segmentation pipeline; use a dense backbone (`unet`, `fcn_resnet`)").into())
        }
        _ => Ok(()),
    }
}

/// The class count of a head: the data's, and `given` must agree.
pub fn check_classes(given: Option<usize>, ctx: &InferCtx) -> Result<usize> {
    match given {
        Some(c) if c != ctx.num_classes => Err(format!(
            "`classes: {c}` but the data has {} classes; remove `classes` to use the data's count",
            ctx.num_classes
        )
        .into()),
        _ => Ok(ctx.num_classes),
    }
}

/// The spatial size of image-shaped input (images or feature maps).
pub fn image_spatial(input: &Sig) -> Result<[usize; 2]> {
    expect_role(input, &[Role::Image, Role::Features], "input")?;
    Ok(input.spatial.ok_or_else(|| format!("this backbone needs image-shaped input [N, C, H, W], got {input}"))?)
}

/// Error unless every `(field, value)` is a finite number.
pub fn finite(fields: &[(&str, f64)]) -> Result<()> {
    match fields.iter().find(|(_, v)| !v.is_finite()) {
        Some((f, v)) => Err(format!("`{f}` must be a finite number, got {v}").into()),
        None => Ok(()),
    }
}

/// Error unless every input of an evaluator is logits, all maps (`maps`) or all vectors; the
/// message points at the evaluator that fits the other shape.
pub fn expect_logits_each(inputs: &[Sig], maps: bool) -> Result<()> {
    for (i, s) in inputs.iter().enumerate() {
        expect_role(s, &[Role::Logits], &format!("inputs.{i}"))?;
        match (maps, s.is_map()) {
            (false, true) => {
                return Err(format!("`inputs.{i}` is a dense map ({s}); use `iou` for segmentation outputs").into());
            }
            (true, false) => {
                return Err(format!("`inputs.{i}` is not a dense map ({s}); use `accuracy` for classification").into());
            }
            _ => {}
        }
    }
    Ok(())
}
