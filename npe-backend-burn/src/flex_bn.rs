//! Training-mode `batch_norm` on burn-flex through npe's own kernels (`bn_kernels`), as a burn
//! autodiff op with its own backward. f32 on the CPU only; anything else returns `None` and goes
//! through burn's `batch_norm_train`.

use crate::bn_kernels::{self, Layout};
use crate::flex_tensor::f32_tensor;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor as BT};

type Ad = Autodiff<Flex>;

/// What the backward pass keeps.
#[derive(Clone, Debug)]
struct Saved {
    x: FlexTensor,
    gamma: FlexTensor,
    mean: Vec<f32>,
    invstd: Vec<f32>,
    layout: Layout,
    shape: Vec<usize>,
}

#[derive(Debug)]
struct BatchNormTrain;

impl Backward<Flex, 3> for BatchNormTrain {
    type State = Saved;
    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let s = ops.state;
        let (x, gamma) = (s.x.to_contiguous(), s.gamma.to_contiguous());
        let (dx, dg, db) =
            bn_kernels::backward(&s.layout, x.storage(), gamma.storage(), &s.mean, &s.invstd, dy.storage());
        let c = [s.layout.c];
        let grads_of = [f32_tensor(dx, &s.shape), f32_tensor(dg, &c), f32_tensor(db, &c)];
        for (parent, grad) in ops.parents.into_iter().zip(grads_of) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// The output carrier (x's rank) and the batch mean and biased variance (untracked).
pub type Outputs = (BT<1>, BT<1>, BT<1>);

/// Batch norm with batch statistics on `x` (N×C×…, carried at rank 1) through npe's kernels, or
/// `None` where they do not apply: a device other than flex or a dtype other than f32.
pub fn batch_norm_train(x: &BT<1>, gamma: &BT<1>, beta: &BT<1>, eps: f64) -> Option<Outputs> {
    if [x, gamma, beta].iter().any(|t| t.dtype() != DType::F32) {
        return None;
    }
    let shape = x.shape().to_vec();
    let layout = Layout::of(&shape)?;
    if gamma.shape().to_vec() != [layout.c] || beta.shape().to_vec() != [layout.c] {
        return None;
    }
    let stats = |f: &bn_kernels::Forward| {
        let c = [layout.c];
        (
            BT::from_primitive::<Flex>(f32_tensor(f.mean.clone(), &c)),
            BT::from_primitive::<Flex>(f32_tensor(f.var.clone(), &c)),
        )
    };
    if ![x, gamma, beta].iter().any(|t| t.is_autodiff()) {
        let [x, g, b] = [x, gamma, beta].map(|t| t.clone().try_into_primitive::<Flex>().ok());
        let (x, g, b) = (x?.to_contiguous(), g?.to_contiguous(), b?.to_contiguous());
        let f = bn_kernels::forward(&layout, x.storage(), g.storage(), b.storage(), eps);
        let (mean, var) = stats(&f);
        return Some((BT::from_primitive::<Flex>(f32_tensor(f.y, &shape)), mean, var));
    }
    let [x, g, b] = [x, gamma, beta].map(|t| t.clone().autodiff().try_into_primitive::<Ad>().ok());
    let (x, g, b) = (x?, g?, b?);
    let (xp, gp, bp) = (x.primitive().to_contiguous(), g.primitive().to_contiguous(), b.primitive().to_contiguous());
    let f = bn_kernels::forward(&layout, xp.storage(), gp.storage(), bp.storage(), eps);
    let (mean, var) = stats(&f);
    let y = f32_tensor(f.y, &shape);
    let out = match BatchNormTrain.prepare::<NoCheckpointing>([x.node(), g.node(), b.node()]).compute_bound().stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved { x: xp, gamma: gp, mean: f.mean, invstd: f.invstd, layout, shape };
            prep.finish(saved, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some((BT::from_primitive::<Ad>(out), mean, var))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module;
    use burn::tensor::{Device, TensorData};

    fn carrier(shape: &[usize], seed: usize) -> BT<1> {
        let n = shape.iter().product::<usize>();
        let v: Vec<f32> = (0..n).map(|i| ((i * 7919 + seed * 104729) % 997) as f32 / 200.0 - 2.0).collect();
        let t = BT::<1>::from_data(TensorData::new(v, [n]), &Device::flex());
        BT::<1>::from_bridge(t.reshape([shape[0], shape[1], shape[2], shape[3]]).into_bridge())
    }

    fn four(t: BT<1>) -> BT<4> {
        BT::<4>::from_bridge(t.into_bridge())
    }

    fn assert_close<const D: usize>(what: &str, a: BT<D>, b: BT<D>) {
        let (a, b) = (a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
        assert_eq!(a.len(), b.len(), "{what}");
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0f32, f32::max);
        assert!(worst < 1e-4, "{what}: relative difference {worst}");
    }

    /// Output, statistics and every gradient equal burn's `batch_norm_train`.
    #[test]
    fn matches_burns_batch_norm_and_its_gradients() {
        let shape = [4, 3, 5, 6];
        let vec1 = |v: Vec<f32>| BT::<1>::from_data(TensorData::new(v, [3]), &Device::flex());
        let (x, g, b) = (carrier(&shape, 1), vec1(vec![0.5, 1.5, -1.0]), vec1(vec![0.1, -0.2, 0.3]));
        let grad = |t: &BT<1>| t.clone().autodiff().require_grad();
        let (x1, g1, b1, x2, g2, b2) = (grad(&x), grad(&g), grad(&b), grad(&x), grad(&g), grad(&b));
        let (y, mean, var) = batch_norm_train(&x1, &g1, &b1, 1e-5).expect("flex f32 takes npe's kernels");
        let theirs = module::batch_norm_train(four(x2.clone()), g2.clone(), b2.clone(), 1e-5);
        assert_close("mean", mean, theirs.mean.inner());
        assert_close("var", var, theirs.variance.inner());
        let r = four(carrier(&shape, 2));
        let (d1, d2) = ((four(y.clone()) * r.clone()).sum().backward(), (theirs.output.clone() * r).sum().backward());
        assert_close("y", four(y), theirs.output);
        assert_close("dx", x1.grad(&d1).unwrap(), x2.grad(&d2).unwrap());
        assert_close("dγ", g1.grad(&d1).unwrap(), g2.grad(&d2).unwrap());
        assert_close("dβ", b1.grad(&d1).unwrap(), b2.grad(&d2).unwrap());
    }
}
