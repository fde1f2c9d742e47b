//! npe's tensor operations on burn. burn's tensors carry their rank in the type
//! (`Tensor<D>`); npe's are rank-erased, so a tensor travels as a `Tensor<1>` *carrier* whose
//! runtime rank is the real one, and each operation views it at its real rank (`ranked!`).

use crate::{flex_bn, flex_conv, flex_eltwise};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::module::{self, interpolate};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use burn::tensor::{Device, Gradients, Int, Tensor as BT, TensorData};
use npe_core::tensor::{
    AutodiffOps, BatchNormArgs, ConvOpts, CreationOps, DistOps, FusedOps, Grads, InplaceOps, MathOps, NnOps, Ops,
    PoolOpts, PrecisionOps, TResult, Tensor, TensorError, guarded,
};

/// A float or index tensor of any rank, carried as rank 1.
#[derive(Clone)]
enum Carrier {
    Float(BT<1>),
    Int(BT<1, Int>),
}

/// A `Tensor<D>` as a carrier.
fn erase<const D: usize>(t: BT<D>) -> BT<1> {
    BT::<1>::from_bridge(t.into_bridge())
}

fn w(t: BT<1>) -> Tensor {
    Tensor::new(Carrier::Float(t))
}

fn f(x: &Tensor) -> TResult<BT<1>> {
    match x.get::<Carrier>()? {
        Carrier::Float(t) => Ok(t.clone()),
        Carrier::Int(_) => Err(TensorError::new("an index tensor was used as a float tensor")),
    }
}

fn idx(x: &Tensor) -> TResult<BT<1, Int>> {
    match x.get::<Carrier>()? {
        Carrier::Int(t) => Ok(t.clone()),
        Carrier::Float(_) => Err(TensorError::new("a float tensor was used as an index tensor")),
    }
}

fn rank_err(r: usize) -> TensorError {
    TensorError::new(format!("burn backend: rank {r} is not supported (1 to 5)"))
}

/// Evaluate `$body` with `$t` bound to the carrier `$x` viewed at its real rank `D` (1..=5).
macro_rules! ranked {
    ($x:expr, |$t:ident| $body:expr) => {{
        let carrier: BT<1> = $x;
        match carrier.rank() {
            1 => {
                let $t = BT::<1>::from_bridge(carrier.into_bridge());
                $body
            }
            2 => {
                let $t = BT::<2>::from_bridge(carrier.into_bridge());
                $body
            }
            3 => {
                let $t = BT::<3>::from_bridge(carrier.into_bridge());
                $body
            }
            4 => {
                let $t = BT::<4>::from_bridge(carrier.into_bridge());
                $body
            }
            5 => {
                let $t = BT::<5>::from_bridge(carrier.into_bridge());
                $body
            }
            r => return Err(rank_err(r)),
        }
    }};
}

/// `$x` viewed at rank `$D` (known from the operation: conv weights, images, ...).
fn at<const D: usize>(x: &Tensor) -> TResult<BT<D>> {
    let t = f(x)?;
    if t.rank() != D {
        return Err(TensorError::new(format!("burn backend: expected rank {D}, got shape {:?}", t.shape().to_vec())));
    }
    Ok(BT::<D>::from_bridge(t.into_bridge()))
}

/// The carrier in another shape (any rank to any rank).
fn reshape(t: BT<1>, s: &[usize]) -> TResult<BT<1>> {
    ranked!(t, |t| Ok(match s.len() {
        1 => erase(t.reshape([s[0]])),
        2 => erase(t.reshape([s[0], s[1]])),
        3 => erase(t.reshape([s[0], s[1], s[2]])),
        4 => erase(t.reshape([s[0], s[1], s[2], s[3]])),
        5 => erase(t.reshape([s[0], s[1], s[2], s[3], s[4]])),
        r => return Err(rank_err(r)),
    }))
}

/// Element-wise `$body` of two float tensors of equal rank (size-1 dimensions broadcast).
macro_rules! binary {
    ($a:expr, $b:expr, |$x:ident, $y:ident| $body:expr) => {{
        let (a, b) = (f($a)?, f($b)?);
        if a.rank() != b.rank() {
            return Err(TensorError::new(format!("burn backend: operands of ranks {} and {}", a.rank(), b.rank())));
        }
        Ok(w(ranked!(a, |$x| {
            let $y = like(&$x, b);
            erase($body)
        })))
    }};
}

/// `t` viewed at the rank of `_like`.
fn like<const D: usize>(_like: &BT<D>, t: BT<1>) -> BT<D> {
    BT::<D>::from_bridge(t.into_bridge())
}

/// Tensor operations on one burn device (`flex` on CPU).
pub struct BurnOps {
    pub(crate) device: Device,
    pub(crate) describe: String,
}

impl CreationOps for BurnOps {
    fn upload(&self, data: &[f32], shape: &[usize]) -> TResult<Tensor> {
        guarded("upload", "burn", || {
            let t = BT::<1>::from_data(TensorData::new(data.to_vec(), [data.len()]), &self.device);
            Ok(w(reshape(t, shape)?))
        })
    }
    fn upload_index(&self, data: &[i64], shape: &[usize]) -> TResult<Tensor> {
        guarded("upload_index", "burn", || {
            let t = BT::<1, Int>::from_data(TensorData::new(data.to_vec(), [data.len()]), &self.device);
            let t = match shape {
                [a, b] => BT::<1, Int>::from_bridge(t.reshape([*a, *b]).into_bridge()),
                [a, b, c, d] => BT::<1, Int>::from_bridge(t.reshape([*a, *b, *c, *d]).into_bridge()),
                s => return Err(TensorError::new(format!("burn backend: index tensors are 2-D or 4-D, got {s:?}"))),
            };
            Ok(Tensor::new(Carrier::Int(t)))
        })
    }
    fn download(&self, x: &Tensor) -> TResult<Vec<f32>> {
        guarded("download", "burn", || {
            let data = ranked!(f(x)?, |t| t.into_data());
            data.convert::<f32>().try_to_vec::<f32>().map_err(|e| TensorError::new(format!("burn backend: {e:?}")))
        })
    }
    fn shape(&self, x: &Tensor) -> TResult<Vec<usize>> {
        guarded("shape", "burn", || {
            Ok(match x.get::<Carrier>()? {
                Carrier::Float(t) => t.shape().to_vec(),
                Carrier::Int(t) => t.shape().to_vec(),
            })
        })
    }
    /// burn tensors are immutable values: a clone shares nothing that can change.
    fn deep_copy(&self, x: &Tensor) -> TResult<Tensor> {
        guarded("deep_copy", "burn", || Ok(x.clone()))
    }
}

impl AutodiffOps for BurnOps {
    fn parameter(&self, data: &[f32], shape: &[usize], _trainable: bool) -> TResult<Tensor> {
        guarded("parameter", "burn", || self.upload(data, shape))
    }
    /// Stored parameters live outside autodiff; each training step takes fresh tracked leaves.
    fn leaf(&self, stored: &Tensor, trainable: bool) -> TResult<Tensor> {
        guarded("leaf", "burn", || {
            let t = f(stored)?;
            Ok(w(ranked!(t, |t| erase(if trainable { t.autodiff().require_grad() } else { t.autodiff() }))))
        })
    }
    fn backward(&self, loss: &Tensor) -> TResult<Grads> {
        guarded("backward", "burn", || Ok(Box::new(f(loss)?.backward()) as Grads))
    }
    fn grad(&self, grads: &Grads, leaf: &Tensor) -> TResult<Option<Tensor>> {
        guarded("grad", "burn", || {
            let grads = grads.downcast_ref::<Gradients>().ok_or_else(|| TensorError::new("foreign gradients"))?;
            Ok(ranked!(f(leaf)?, |t| t.grad(grads).map(erase)).map(w))
        })
    }
    fn detach(&self, x: &Tensor) -> TResult<Tensor> {
        guarded("detach", "burn", || Ok(w(ranked!(f(x)?, |t| erase(t.detach())))))
    }
    /// Tensors outside autodiff record nothing; inference uses those.
    fn no_grad(&self) -> Box<dyn std::any::Any> {
        Box::new(())
    }
}

impl MathOps for BurnOps {
    fn add(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor> {
        guarded("add", "burn", || {
            if let Some(y) = flex_eltwise::add_op(&f(a)?, &f(b)?) {
                return Ok(w(y));
            }
            binary!(a, b, |x, y| x + y)
        })
    }
    fn sub(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor> {
        guarded("sub", "burn", || binary!(a, b, |x, y| x - y))
    }
    fn mul(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor> {
        guarded("mul", "burn", || binary!(a, b, |x, y| x * y))
    }
    fn div(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor> {
        guarded("div", "burn", || binary!(a, b, |x, y| x / y))
    }
    fn add_scalar(&self, x: &Tensor, s: f64) -> TResult<Tensor> {
        guarded("add_scalar", "burn", || Ok(w(ranked!(f(x)?, |t| erase(t + s)))))
    }
    fn mul_scalar(&self, x: &Tensor, s: f64) -> TResult<Tensor> {
        guarded("mul_scalar", "burn", || Ok(w(ranked!(f(x)?, |t| erase(t * s)))))
    }
    fn powf_scalar(&self, x: &Tensor, p: f64) -> TResult<Tensor> {
        guarded("powf_scalar", "burn", || Ok(w(ranked!(f(x)?, |t| erase(t.powf_scalar(p))))))
    }
    fn neg(&self, x: &Tensor) -> TResult<Tensor> {
        guarded("neg", "burn", || Ok(w(ranked!(f(x)?, |t| erase(t.neg())))))
    }
    fn exp(&self, x: &Tensor) -> TResult<Tensor> {
        guarded("exp", "burn", || Ok(w(ranked!(f(x)?, |t| erase(t.exp())))))
    }
    fn log1p(&self, x: &Tensor) -> TResult<Tensor> {
        guarded("log1p", "burn", || Ok(w(ranked!(f(x)?, |t| erase(t.log1p())))))
    }
    fn abs(&self, x: &Tensor) -> TResult<Tensor> {
        guarded("abs", "burn", || Ok(w(ranked!(f(x)?, |t| erase(t.abs())))))
    }
    fn sqrt(&self, x: &Tensor) -> TResult<Tensor> {
        guarded("sqrt", "burn", || Ok(w(ranked!(f(x)?, |t| erase(t.sqrt())))))
    }
    fn relu(&self, x: &Tensor) -> TResult<Tensor> {
        guarded("relu", "burn", || match flex_eltwise::relu_op(&f(x)?) {
            Some(y) => Ok(w(y)),
            None => Ok(w(ranked!(f(x)?, |t| erase(relu(t))))),
        })
    }
    fn sum_dims(&self, x: &Tensor, dims: &[usize], keepdim: bool) -> TResult<Tensor> {
        guarded("sum_dims", "burn", || {
            let kept = ranked!(f(x)?, |t| erase(t.sum_dims(dims)));
            squeeze(kept, dims, keepdim)
        })
    }
    fn mean_dims(&self, x: &Tensor, dims: &[usize], keepdim: bool) -> TResult<Tensor> {
        guarded("mean_dims", "burn", || {
            let kept = ranked!(f(x)?, |t| erase(t.mean_dims(dims)));
            squeeze(kept, dims, keepdim)
        })
    }
    fn argmax(&self, x: &Tensor, dim: usize) -> TResult<Tensor> {
        guarded("argmax", "burn", || squeeze(ranked!(f(x)?, |t| erase(t.argmax(dim).float())), &[dim], false))
    }
    fn reshape(&self, x: &Tensor, shape: &[usize]) -> TResult<Tensor> {
        guarded("reshape", "burn", || Ok(w(reshape(f(x)?, shape)?)))
    }
    fn transpose(&self, x: &Tensor, d0: usize, d1: usize) -> TResult<Tensor> {
        guarded("transpose", "burn", || Ok(w(ranked!(f(x)?, |t| erase(t.swap_dims(d0, d1))))))
    }
    fn cat(&self, xs: &[Tensor], dim: usize) -> TResult<Tensor> {
        guarded("cat", "burn", || {
            let first = f(xs.first().ok_or_else(|| TensorError::new("cat of no tensors"))?)?;
            Ok(w(ranked!(first, |t| {
                let all = xs.iter().map(|x| Ok(like(&t, f(x)?))).collect::<TResult<Vec<_>>>()?;
                erase(BT::cat(all, dim))
            })))
        })
    }
    fn slice(&self, x: &Tensor, dim: usize, start: usize, end: usize, step: usize) -> TResult<Tensor> {
        guarded("slice", "burn", || {
            use burn::tensor::Slice;
            let rank = f(x)?.rank();
            let mut s: Vec<Slice> = (0..rank).map(|_| Slice::new(0, None, 1)).collect();
            s[dim] = Slice::new(start as isize, Some(end as isize), step as isize);
            Ok(w(ranked!(f(x)?, |t| erase(t.slice(s.as_slice())))))
        })
    }
    fn pad(&self, x: &Tensor, dim: usize, before: usize, after: usize) -> TResult<Tensor> {
        guarded("pad", "burn", || {
            let t = f(x)?;
            let mut parts = vec![];
            for n in [before, after] {
                let mut s = t.shape().to_vec();
                s[dim] = n;
                parts.push(ranked!(t.clone(), |t| erase(zeros(&t, &s))));
            }
            let [b, a] = [parts[0].clone(), parts[1].clone()].map(w);
            self.cat(&[b, w(t), a], dim)
        })
    }
}

/// Zeros of shape `s` (the rank of `like`) on `like`'s device.
fn zeros<const D: usize>(like: &BT<D>, s: &[usize]) -> BT<D> {
    BT::<D>::zeros(std::array::from_fn::<usize, D, _>(|i| s[i]), &like.device())
}

/// Drop the reduced `dims` (kept with size 1 by burn) unless `keepdim`.
fn squeeze(t: BT<1>, dims: &[usize], keepdim: bool) -> TResult<Tensor> {
    if keepdim {
        return Ok(w(t));
    }
    let s: Vec<usize> =
        t.shape().to_vec().into_iter().enumerate().filter(|(i, _)| !dims.contains(i)).map(|(_, d)| d).collect();
    Ok(w(reshape(t, if s.is_empty() { &[1] } else { &s })?))
}

impl NnOps for BurnOps {
    fn conv2d(&self, x: &Tensor, k: &Tensor, b: Option<&Tensor>, o: ConvOpts) -> TResult<Tensor> {
        guarded("conv2d", "burn", || {
            let (x, k, b) = (at::<4>(x)?, at::<4>(k)?, b.map(at::<1>).transpose()?);
            if let Some(y) = flex_conv::conv2d(&x, &k, b.as_ref(), o.stride, o.padding, o.groups) {
                return Ok(w(erase(y)));
            }
            let opts = ConvOptions::new([o.stride, o.stride], [o.padding, o.padding], [1, 1], o.groups);
            Ok(w(erase(module::conv2d(x, k, b, opts))))
        })
    }
    fn matmul(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor> {
        guarded("matmul", "burn", || Ok(w(erase(at::<2>(a)?.matmul(at::<2>(b)?)))))
    }
    /// burn computes batch statistics; the running-statistics update is returned (PyTorch's:
    /// momentum average, unbiased variance).
    fn batch_norm(&self, x: &Tensor, a: BatchNormArgs<'_>) -> TResult<(Tensor, Option<(Tensor, Tensor)>)> {
        guarded("batch_norm", "burn", || {
            let BatchNormArgs { train, momentum, eps, .. } = a;
            let (g, b) = (at::<1>(a.weight)?, at::<1>(a.bias)?);
            let (rm, rv) = (at::<1>(a.running_mean)?, at::<1>(a.running_var)?);
            let x = f(x)?;
            if !train {
                return Ok((w(ranked!(x, |t| erase(module::batch_norm(t, g, b, rm, rv, eps)))), None));
            }
            let s = x.shape().to_vec();
            let n = s.iter().product::<usize>() / s[1];
            let (y, mean, var) = match flex_bn::batch_norm_train(&x, &g, &b, eps) {
                Some(fused) => fused,
                None => ranked!(x, |t| {
                    let o = module::batch_norm_train(t, g, b, eps);
                    (erase(o.output), o.mean.inner(), o.variance.inner())
                }),
            };
            let unbias = if n > 1 { n as f64 / (n - 1) as f64 } else { 1.0 };
            let rm = rm.inner() * (1.0 - momentum) + mean * momentum;
            let rv = rv.inner() * (1.0 - momentum) + var * (momentum * unbias);
            Ok((w(y), Some((w(rm), w(rv)))))
        })
    }
    fn max_pool2d(&self, x: &Tensor, o: PoolOpts) -> TResult<Tensor> {
        guarded("max_pool2d", "burn", || {
            let opts = MaxPoolOptions::new([o.kernel, o.kernel])
                .with_stride([o.stride, o.stride])
                .with_padding([o.padding, o.padding]);
            Ok(w(erase(module::max_pool2d(at::<4>(x)?, opts))))
        })
    }
    fn resize_bilinear(&self, x: &Tensor, size: [usize; 2]) -> TResult<Tensor> {
        guarded("resize_bilinear", "burn", || {
            let opts =
                InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false).with_output_size(size);
            Ok(w(erase(interpolate(at::<4>(x)?, opts))))
        })
    }
    fn log_softmax(&self, x: &Tensor, dim: usize) -> TResult<Tensor> {
        guarded("log_softmax", "burn", || Ok(w(ranked!(f(x)?, |t| erase(log_softmax(t, dim))))))
    }
    fn gather(&self, x: &Tensor, dim: usize, index: &Tensor) -> TResult<Tensor> {
        guarded("gather", "burn", || {
            let i = idx(index)?;
            Ok(w(ranked!(f(x)?, |t| erase(t.gather(dim, BT::from_bridge(i.into_bridge()))))))
        })
    }
}

impl InplaceOps for BurnOps {}

/// The option-A shortcut as a stride-2 1×1 convolution with a fixed 0/1 kernel: one fused
/// kernel instead of a strided copy and two concatenations.
impl FusedOps for BurnOps {
    fn option_a_shortcut(&self, x: &Tensor, pad: usize) -> TResult<Tensor> {
        guarded("option_a_shortcut", "burn", || {
            let x = at::<4>(x)?;
            let cin = x.dims()[1];
            let cout = cin + 2 * pad;
            let mut k = vec![0f32; cout * cin];
            for i in 0..cin {
                k[(i + pad) * cin + i] = 1.0;
            }
            let k = BT::<4>::from_data(TensorData::new(k, [cout, cin, 1, 1]), &x.device());
            if let Some(y) = flex_conv::conv2d(&x, &k, None, 2, 0, 1) {
                return Ok(w(erase(y)));
            }
            Ok(w(erase(module::conv2d(x, k, None, ConvOptions::new([2, 2], [0, 0], [1, 1], 1)))))
        })
    }
}

/// float32 only: burn has no autocast (the default refuses bf16/fp16 with a hint).
impl PrecisionOps for BurnOps {}

/// burn has collectives only on its CUDA backend (NCCL): the CPU keeps the single-process
/// defaults, and joining a run says to use `--backend tch`.
impl DistOps for BurnOps {}

impl Ops for BurnOps {
    fn describe(&self) -> String {
        self.describe.clone()
    }
}
