//! ReLU and the same-shape add (a residual block's) on burn-flex, split over the thread pool:
//! burn-flex runs element-wise ops on one thread, and on ResNet-32 its ReLU + add took 5× PyTorch's
//! time (`results/bench_speed.md`). burn autodiff ops with their own backward; f32 on the CPU only,
//! anything else returns `None` and goes through burn's.

use crate::flex_tensor::f32_tensor;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor as BT};
use rayon::prelude::*;

type Ad = Autodiff<Flex>;

/// Elements per task: large enough that scheduling is negligible.
const CHUNK: usize = 1 << 15;

/// `out[i] = f(a[i], b[i])` over the pool.
fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((o, a), b)| {
        for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
            *o = f(*a, *b);
        }
    });
    out
}

/// ReLU that lets NaN through (as PyTorch and burn do).
fn relu(x: f32) -> f32 {
    if x > 0.0 || x.is_nan() { x } else { 0.0 }
}

/// The f32 flex primitives of `ts`, untracked (`Ok`) or under autodiff (`Err`); `None` when
/// one of them is not an f32 flex tensor.
#[allow(clippy::type_complexity)]
fn primitives<const N: usize>(
    ts: [&BT<1>; N],
) -> Option<Result<[FlexTensor; N], [burn::backend::tensor::FloatTensor<Ad>; N]>> {
    if ts.iter().any(|t| t.dtype() != DType::F32) {
        return None;
    }
    if !ts.iter().any(|t| t.is_autodiff()) {
        let all: Vec<FlexTensor> =
            ts.iter().map(|t| (*t).clone().try_into_primitive::<Flex>().ok()).collect::<Option<_>>()?;
        return Some(Ok(all.try_into().ok()?));
    }
    let all: Vec<_> =
        ts.iter().map(|t| (*t).clone().autodiff().try_into_primitive::<Ad>().ok()).collect::<Option<_>>()?;
    Some(Err(all.try_into().ok()?))
}

#[derive(Debug)]
struct Relu;

impl Backward<Flex, 1> for Relu {
    /// The output: the gradient passes where it is positive (or NaN).
    type State = FlexTensor;
    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let y = ops.state.to_contiguous();
        if let [Some(node)] = ops.parents {
            let shape = y.layout().shape().to_vec();
            let dx = zip_map(y.storage(), dy.storage(), |y, g| if y > 0.0 || y.is_nan() { g } else { 0.0 });
            grads.register::<Flex>(node.id, f32_tensor(dx, &shape));
        }
    }
}

/// `max(x, 0)` of a carrier, or `None` (then burn's).
pub fn relu_op(x: &BT<1>) -> Option<BT<1>> {
    let shape = x.shape().to_vec();
    match primitives([x])? {
        Ok([p]) => {
            let p = p.to_contiguous();
            let v = p.storage::<f32>();
            Some(BT::from_primitive::<Flex>(f32_tensor(zip_map(v, v, |a, _| relu(a)), &shape)))
        }
        Err([t]) => {
            let p = t.primitive().to_contiguous();
            let v = p.storage::<f32>();
            let y = f32_tensor(zip_map(v, v, |a, _| relu(a)), &shape);
            let out = match Relu.prepare::<NoCheckpointing>([t.node()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(y.clone(), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            Some(BT::from_primitive::<Ad>(out))
        }
    }
}

#[derive(Debug)]
struct Add;

impl Backward<Flex, 2> for Add {
    type State = ();
    fn backward(self, ops: Ops<(), 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        for node in ops.parents.into_iter().flatten() {
            grads.register::<Flex>(node.id, dy.clone());
        }
    }
}

/// `a + b` of two carriers of one shape, or `None` (then burn's, which also broadcasts).
pub fn add_op(a: &BT<1>, b: &BT<1>) -> Option<BT<1>> {
    let shape = a.shape().to_vec();
    if b.shape().to_vec() != shape || shape.iter().product::<usize>() < CHUNK {
        return None;
    }
    let sum = |x: &FlexTensor, y: &FlexTensor| {
        let (x, y) = (x.to_contiguous(), y.to_contiguous());
        f32_tensor(zip_map(x.storage(), y.storage(), |p, q| p + q), &shape)
    };
    match primitives([a, b])? {
        Ok([x, y]) => Some(BT::from_primitive::<Flex>(sum(&x, &y))),
        Err([x, y]) => {
            let s = sum(x.primitive(), y.primitive());
            let out = match Add.prepare::<NoCheckpointing>([x.node(), y.node()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((), s),
                OpsKind::UnTracked(prep) => prep.finish(s),
            };
            Some(BT::from_primitive::<Ad>(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation;
    use burn::tensor::{Device, TensorData};

    fn vector(n: usize, seed: usize) -> BT<1> {
        let mut v: Vec<f32> = (0..n).map(|i| ((i * 7919 + seed * 104729) % 997) as f32 / 498.5 - 1.0).collect();
        v[3] = f32::NAN;
        BT::from_data(TensorData::new(v, [n]), &Device::flex())
    }

    fn same(what: &str, a: BT<1>, b: BT<1>) {
        let (a, b) = (a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(x == y || (x.is_nan() && y.is_nan()), "{what}[{i}]: {x} vs {y}");
        }
    }

    /// Values and gradients equal burn's ReLU and add exactly, NaN included.
    #[test]
    fn relu_and_add_match_burns() {
        let n = 3 * CHUNK + 17;
        let (a, b, r) = (vector(n, 1), vector(n, 2), vector(n, 3).abs());
        same("relu", relu_op(&a).unwrap(), activation::relu(a.clone()));
        same("add", add_op(&a, &b).unwrap(), a.clone() + b.clone());
        let leaf = |t: &BT<1>| t.clone().autodiff().require_grad();
        let (a1, b1, a2, b2) = (leaf(&a), leaf(&b), leaf(&a), leaf(&b));
        let ours = relu_op(&add_op(&relu_op(&a1).unwrap(), &b1).unwrap()).unwrap();
        let theirs = activation::relu(activation::relu(a2.clone()) + b2.clone());
        let (g1, g2) = ((ours * r.clone()).sum().backward(), (theirs * r).sum().backward());
        same("da", a1.grad(&g1).unwrap(), a2.grad(&g2).unwrap());
        same("db", b1.grad(&g1).unwrap(), b2.grad(&g2).unwrap());
    }

    #[test]
    fn small_or_broadcast_adds_are_left_to_burn() {
        assert!(add_op(&vector(10, 1), &vector(10, 2)).is_none());
    }
}
