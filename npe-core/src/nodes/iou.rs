//! `iou`: per-class IoU, mIoU, mean pixel accuracy and tail mIoU (segmentation), on the host.

use crate::error::Result;
use crate::kind::{Declare, NodeDef, expect_logits_each};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

fn default_tail_fraction() -> f64 {
    0.01
}

/// Which segmentation classes count as "tail".
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TailSpec {
    /// Classes whose share of labelled training pixels is below this are tail. Default 0.01.
    #[serde(default = "default_tail_fraction")]
    pub pixel_fraction_below: f64,
}

impl Default for TailSpec {
    fn default() -> Self {
        Self { pixel_fraction_below: default_tail_fraction() }
    }
}

/// `iou`: per-class IoU, mIoU, mean per-class pixel accuracy and tail-class mIoU (segmentation).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Iou {
    /// Dense logits to evaluate.
    pub inputs: Vec<NodeRef>,
    /// Tail classes by training pixel frequency.
    #[serde(default)]
    pub tail: TailSpec,
}

impl NodeDef for Iou {
    const KIND: &'static str = "iou";
    const CATEGORY: Category = Category::Evaluator;
    const SUMMARY: &'static str = "per-class IoU, mIoU, tail mIoU, mean pixel accuracy";
    type Lowered = ();

    fn inputs(&self) -> Vec<Input> {
        Input::list("inputs", &self.inputs)
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig> {
        expect_logits_each(inputs, true)?;
        Ok(Sig::scalar(Role::Report))
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}
}
