//! The size check on a validated graph: every node's parameters, counted from the layout its
//! kind declares (no tensor is allocated), against the most npe trains, so that a width typed
//! with three zeros too many is a located error in `npe check`, not an abort on allocation.

use super::Ir;
use crate::diag::Diagnostic;
use crate::kind::Declare;
use crate::types::{Category, ParamSpec};

/// The most parameter values one pipeline may hold: 2³¹ (8 GiB in fp32, about three times that
/// with gradients and momentum during training).
pub const MAX_PARAMETERS: u128 = 1 << 31;

/// Each trained node's parameter count, in execution order.
pub fn parameters_per_node(ir: &Ir) -> Vec<(String, u128)> {
    let mut out = vec![];
    for (node, op) in ir.ops() {
        if op.category() == Category::Evaluator {
            continue;
        }
        let sigs: Vec<_> = op.inputs().iter().filter_map(|i| ir.node(&i.source.node).map(|n| n.sig)).collect();
        let mut specs: Vec<ParamSpec> = vec![];
        let _ = op.lower(&mut Declare::new(&node.name, &mut specs), &sigs, &node.sig);
        let count = specs.iter().map(|s| s.shape.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128))).sum();
        out.push((node.name.clone(), count));
    }
    out
}

/// An error at the largest node when the pipeline's parameters exceed [`MAX_PARAMETERS`].
pub fn check_parameters(ir: &Ir) -> Option<Diagnostic> {
    let per_node = parameters_per_node(ir);
    let total: u128 = per_node.iter().map(|(_, n)| n).fold(0u128, |a, &n| a.saturating_add(n));
    if total <= MAX_PARAMETERS {
        return None;
    }
    let (name, largest) = per_node.iter().max_by_key(|(_, n)| *n)?;
    let origin = ir.node(name)?.origin.clone();
    let gib = |n: u128| n as f64 * 4.0 / (1u64 << 30) as f64;
    Some(
        Diagnostic::error(
            origin,
            format!(
                "the pipeline has {total} parameters ({:.1} GiB in fp32, about 3× that to train), more than npe supports ({MAX_PARAMETERS}); node `{name}` holds {largest}",
                gib(total)
            ),
        )
        .with_hint("check this node's widths (e.g. an MLP's `hidden`, a backbone's `width`)"),
    )
}
