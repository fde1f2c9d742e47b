//! `accuracy`: mean per-class accuracy (the balanced-test metric), per-class accuracy and
//! head/medium/tail group means, for each input. Computed on the host from argmax predictions.

use crate::error::Result;
use crate::kind::{Declare, NodeDef, expect_logits_each};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

/// How classes are grouped into head / medium / tail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// By training count: many-shot `> many`, few-shot `< few`, medium in between.
    #[default]
    Count,
    /// By class index (classes sorted by frequency): `[0, head)`, `[head, tail)`, `[tail, C)`.
    Index,
}

fn default_many() -> usize {
    100
}
fn default_few() -> usize {
    20
}

/// Head/medium/tail grouping. Defaults: by count, many > 100, few < 20 (the CIFAR-100-LT convention).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsSpec {
    /// `count` or `index`.
    #[serde(default)]
    pub by: GroupBy,
    /// Count threshold above which a class is "many-shot" (head).
    #[serde(default = "default_many")]
    pub many: usize,
    /// Count threshold below which a class is "few-shot" (tail).
    #[serde(default = "default_few")]
    pub few: usize,
    /// With `by: index`: classes `[0, head)` are the head.
    #[serde(default)]
    pub head: Option<usize>,
    /// With `by: index`: classes `[tail, C)` are the tail.
    #[serde(default)]
    pub tail: Option<usize>,
}

impl Default for GroupsSpec {
    fn default() -> Self {
        Self { by: GroupBy::Count, many: default_many(), few: default_few(), head: None, tail: None }
    }
}

impl GroupsSpec {
    /// Check the fields fit together and the class count.
    pub fn validate(&self, num_classes: usize) -> Result<()> {
        match self.by {
            GroupBy::Count => {
                if self.head.is_some() || self.tail.is_some() {
                    return Err("`head`/`tail` are index boundaries: set `by: index` to use them".into());
                }
                if self.few > self.many {
                    return Err(format!("`few` ({}) must not exceed `many` ({})", self.few, self.many).into());
                }
            }
            GroupBy::Index => {
                let (h, t) = match (self.head, self.tail) {
                    (Some(h), Some(t)) => (h, t),
                    _ => return Err("`by: index` needs both `head` and `tail` boundaries".into()),
                };
                if !(h <= t && t <= num_classes) {
                    return Err(format!("need head ≤ tail ≤ {num_classes} classes, got head {h}, tail {t}").into());
                }
            }
        }
        Ok(())
    }

    /// Group of each class (0 head, 1 medium, 2 tail) given training counts.
    pub fn assign(&self, counts: &[usize]) -> Vec<usize> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &n)| match self.by {
                GroupBy::Count if n > self.many => 0,
                GroupBy::Count if n < self.few => 2,
                GroupBy::Count => 1,
                GroupBy::Index if i < self.head.unwrap_or(0) => 0,
                GroupBy::Index if i >= self.tail.unwrap_or(counts.len()) => 2,
                GroupBy::Index => 1,
            })
            .collect()
    }
}

/// `accuracy`: mean per-class accuracy (the balanced-test metric), per-class accuracy and
/// head/medium/tail group means, for each input.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Accuracy {
    /// Logits to evaluate (raw, `npe_la`, `posthoc_la`, ...).
    pub inputs: Vec<NodeRef>,
    /// Head/medium/tail grouping.
    #[serde(default)]
    pub groups: GroupsSpec,
}

impl NodeDef for Accuracy {
    const KIND: &'static str = "accuracy";
    const CATEGORY: Category = Category::Evaluator;
    const SUMMARY: &'static str = "mean per-class, per-class and head/medium/tail accuracy";
    type Lowered = ();

    fn inputs(&self) -> Vec<Input> {
        Input::list("inputs", &self.inputs)
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig> {
        expect_logits_each(inputs, false)?;
        Ok(Sig::scalar(Role::Report))
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}
}
