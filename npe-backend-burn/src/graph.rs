//! Running the graph: the forward pass over the nodes a request needs, dispatching each op to
//! its implementation (one line per kind).

use crate::ctx::{Ctx, NodeCtx};
use crate::custom::CustomKinds;
use crate::error::BurnError;
use crate::nodes::{adjust, backbone, head, loss};
use crate::value::Act;
use burn::tensor::Tensor;
use npe_core::ir::Ir;
use npe_core::nodes::Op;
use petgraph::graph::NodeIndex;
use std::collections::HashMap;

/// The nodes needed to compute `targets` (with their ancestors), in execution order.
pub fn needed(ir: &Ir, targets: &[&str]) -> Vec<NodeIndex> {
    let mut want = std::collections::HashSet::new();
    for t in targets {
        if let Some(i) = ir.index_of(t) {
            want.insert(i);
            for a in ir.ancestors(t) {
                want.insert(ir.index_of(a).expect("ancestor exists"));
            }
        }
    }
    ir.order.iter().copied().filter(|i| want.contains(i)).collect()
}

fn run_op(
    ctx: &Ctx,
    ir: &Ir,
    name: &str,
    op: &Op,
    mut inputs: Vec<Act>,
    custom: &CustomKinds,
) -> Result<Act, BurnError> {
    let nc = NodeCtx { ctx, node: name, params: None };
    let x = || inputs[0].clone();
    match op {
        Op::Mlp(p) => backbone::mlp(&nc, p, x()),
        Op::ResNetCifar(p) => backbone::resnet_cifar(&nc, p, x()),
        Op::SmallCnn(p) => backbone::small_cnn(&nc, p, x()),
        Op::UNet(p) => crate::nodes::dense::unet(&nc, p, x()),
        Op::FcnResNet(p) => crate::nodes::dense::fcn_resnet(&nc, p, x()),
        Op::Custom(p) => {
            let imp = custom
                .get(&p.kind)
                .ok_or_else(|| BurnError::MissingCustom { node: name.into(), kind: p.kind.clone() })?;
            imp.forward(&NodeCtx { ctx, node: name, params: Some(&p.params) }, x())
        }
        Op::Linear(p) => head::linear(&nc, p, x()),
        Op::Pem(p) => head::pem(&nc, p, x()),
        Op::CrossEntropy(p) => loss::cross_entropy(ctx, p, x()),
        Op::LogitAdjustedCe(p) => loss::logit_adjusted_ce(ctx, p, x()),
        Op::OneWayLogistic(p) => loss::one_way_logistic(ctx, p, x()),
        Op::NpeLa(p) => {
            let pems = inputs.pop().expect("two inputs");
            adjust::npe_la(ctx, p, inputs.pop().expect("two inputs"), pems)
        }
        Op::PosthocLa(p) => adjust::posthoc_la(ctx, p, x()),
        Op::Resize(p) => adjust::resize(ctx, p, x()),
        Op::Accuracy(_) | Op::PriorEstimate(_) | Op::Iou(_) => {
            let _ = ir;
            Err(BurnError::Internal(format!("evaluator `{name}` is computed by the core, not the backend")))
        }
    }
}

/// Forward `images` through `nodes`; returns every computed node's output.
pub fn forward(
    ctx: &Ctx,
    ir: &Ir,
    nodes: &[NodeIndex],
    images: Tensor<4>,
    custom: &CustomKinds,
) -> Result<HashMap<NodeIndex, Act>, BurnError> {
    let mut acts: HashMap<NodeIndex, Act> = HashMap::new();
    for &i in nodes {
        let node = &ir.graph[i];
        let Some(op) = node.op() else {
            acts.insert(i, Act::Map(images.clone()));
            continue;
        };
        let inputs = op
            .inputs()
            .iter()
            .map(|inp| {
                let src = ir
                    .index_of(&inp.source.node)
                    .ok_or_else(|| BurnError::Internal(format!("unknown input `{}`", inp.source)))?;
                acts.get(&src).cloned().ok_or_else(|| {
                    BurnError::Internal(format!("input `{}` of `{}` not computed", inp.source, node.name))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = run_op(ctx, ir, &node.name, op, inputs, custom)?;
        acts.insert(i, out);
    }
    Ok(acts)
}
