//! `conv2d` on burn-flex through npe's own kernels (`conv_kernels`), as a burn autodiff op with
//! its own backward. Used for f32 tensors on the CPU with groups 1; everything else (GPUs, other
//! precisions, grouped convolutions) returns `None` and goes through burn's `conv2d`.

use crate::conv_kernels::{self, Geometry};
use crate::flex_tensor::f32_tensor;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor as BT};

type Ad = Autodiff<Flex>;

/// What the backward pass keeps: the inputs and the sizes.
#[derive(Clone, Debug)]
struct Saved {
    x: FlexTensor,
    w: FlexTensor,
    g: Geometry,
}

/// The gradients of the parents that want one: `[x, w, b]`.
fn gradients(s: Saved, dy: FlexTensor, want: [bool; 3]) -> [Option<FlexTensor>; 3] {
    let dy = dy.to_contiguous();
    let dy = dy.storage::<f32>();
    let g = &s.g;
    let dx = want[0]
        .then(|| f32_tensor(conv_kernels::backward_x(g, s.w.to_contiguous().storage(), dy), &[g.n, g.cin, g.h, g.w]));
    let dw = want[1].then(|| {
        f32_tensor(conv_kernels::backward_w(g, s.x.to_contiguous().storage(), dy), &[g.cout, g.cin, g.kh, g.kw])
    });
    let db = want[2].then(|| f32_tensor(conv_kernels::backward_b(g, dy), &[g.cout]));
    [dx, dw, db]
}

/// The backward op of a convolution with `N` inputs: `[x, w]` or `[x, w, b]`.
#[derive(Debug)]
struct Conv<const N: usize>;

impl<const N: usize> Backward<Flex, N> for Conv<N> {
    type State = Saved;
    fn backward(self, ops: Ops<Saved, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let mut want = [false; 3];
        want.iter_mut().zip(&ops.parents).for_each(|(w, p)| *w = p.is_some());
        for (parent, grad) in ops.parents.into_iter().zip(gradients(ops.state, dy, want)) {
            if let (Some(node), Some(grad)) = (parent, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// The forward convolution of flex tensors.
fn forward(x: &FlexTensor, w: &FlexTensor, b: Option<&FlexTensor>, g: &Geometry) -> FlexTensor {
    let b = b.map(|b| b.to_contiguous());
    let y = conv_kernels::forward(
        g,
        x.to_contiguous().storage(),
        w.to_contiguous().storage(),
        b.as_ref().map(|b| b.storage()),
    );
    f32_tensor(y, &g.out_shape())
}

/// `conv2d(x, w, b)` through npe's kernels, or `None` where they do not apply (then the caller
/// uses burn's): a device other than flex, a dtype other than f32, or groups > 1.
pub fn conv2d(x: &BT<4>, w: &BT<4>, b: Option<&BT<1>>, stride: usize, pad: usize, groups: usize) -> Option<BT<4>> {
    let f32s = x.dtype() == DType::F32 && w.dtype() == DType::F32 && b.is_none_or(|b| b.dtype() == DType::F32);
    if groups != 1 || !f32s {
        return None;
    }
    let g = Geometry::new(x.dims(), w.dims(), stride, pad)?;
    if b.is_some_and(|b| b.dims() != [g.cout]) {
        return None;
    }
    let tracked = x.is_autodiff() || w.is_autodiff() || b.is_some_and(|b| b.is_autodiff());
    if !tracked {
        let (x, w) = (x.clone().try_into_primitive::<Flex>().ok()?, w.clone().try_into_primitive::<Flex>().ok()?);
        let b = match b {
            Some(b) => Some(b.clone().try_into_primitive::<Flex>().ok()?),
            None => None,
        };
        return Some(BT::from_primitive::<Flex>(forward(&x, &w, b.as_ref(), &g)));
    }
    let x = x.clone().autodiff().try_into_primitive::<Ad>().ok()?;
    let w = w.clone().autodiff().try_into_primitive::<Ad>().ok()?;
    let saved = Saved { x: x.primitive().clone(), w: w.primitive().clone(), g };
    let out = match b {
        Some(b) => {
            let b = b.clone().autodiff().try_into_primitive::<Ad>().ok()?;
            let y = forward(x.primitive(), w.primitive(), Some(b.primitive()), &g);
            match Conv::<3>.prepare::<NoCheckpointing>([x.node(), w.node(), b.node()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(saved, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
        None => {
            let y = forward(x.primitive(), w.primitive(), None, &g);
            match Conv::<2>.prepare::<NoCheckpointing>([x.node(), w.node()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(saved, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    };
    Some(BT::from_primitive::<Ad>(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, TensorData};

    fn tensor<const D: usize>(shape: [usize; D], seed: usize) -> BT<D> {
        let n = shape.iter().product::<usize>();
        let v: Vec<f32> = (0..n).map(|i| ((i * 7919 + seed * 104729) % 997) as f32 / 498.5 - 1.0).collect();
        BT::from_data(TensorData::new(v, shape), &Device::flex())
    }

    fn assert_close<const D: usize>(what: &str, a: BT<D>, b: BT<D>) {
        let (a, b) = (a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
        assert_eq!(a.len(), b.len());
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0f32, f32::max);
        assert!(worst < 1e-4, "{what}: relative difference {worst}");
    }

    /// Forward and every gradient equal burn's own `conv2d`, with and without a bias, for
    /// untracked and tracked tensors (the input untracked, as data is in training).
    #[test]
    fn matches_burns_conv2d_and_its_gradients() {
        for (stride, pad, bias) in [(1, 1, true), (2, 1, false), (2, 0, true)] {
            let (x, w, b) = (tensor([3, 4, 7, 6], 1), tensor([5, 4, 3, 3], 2), tensor([5], 3));
            let b = bias.then_some(b);
            let opts = ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1);
            let ours = conv2d(&x, &w, b.as_ref(), stride, pad, 1).expect("flex f32 takes npe's kernels");
            assert!(!ours.is_autodiff());
            assert_close("forward", ours, module::conv2d(x.clone(), w.clone(), b.clone(), opts.clone()));

            let leaves = |t: &BT<4>| t.clone().autodiff().require_grad();
            let (w1, w2) = (leaves(&w), leaves(&w));
            let (b1, b2) =
                (b.clone().map(|b| b.autodiff().require_grad()), b.clone().map(|b| b.autodiff().require_grad()));
            let (x1, x2) = (leaves(&x), leaves(&x));
            let dy = tensor([3, 5, (7 + 2 * pad - 3) / stride + 1, (6 + 2 * pad - 3) / stride + 1], 4);
            let ours = conv2d(&x1, &w1, b1.as_ref(), stride, pad, 1).unwrap();
            let theirs = module::conv2d(x2.clone(), w2.clone(), b2.clone(), opts);
            let (g1, g2) = ((ours * dy.clone()).sum().backward(), (theirs * dy).sum().backward());
            assert_close("dx", x1.grad(&g1).unwrap(), x2.grad(&g2).unwrap());
            assert_close("dw", w1.grad(&g1).unwrap(), w2.grad(&g2).unwrap());
            if let (Some(b1), Some(b2)) = (b1, b2) {
                assert_close("db", b1.grad(&g1).unwrap(), b2.grad(&g2).unwrap());
            }
        }
    }

    #[test]
    fn grouped_convolutions_are_left_to_burn() {
        assert!(conv2d(&tensor([1, 4, 5, 5], 1), &tensor([4, 2, 3, 3], 2), None, 1, 1, 2).is_none());
    }
}
