//! The operations a backend implements, in families (as burn splits its backend trait). Methods
//! with a default body are written once over the others; a backend overrides one only for a
//! measured gain (a fused kernel, an in-place update).
//!
//! Conventions: shapes are row-major `[N, C, H, W]`-style lists; binary operations take operands
//! of the same rank and broadcast dimensions of size 1; `dims` are 0-based.

use super::{TResult, Tensor, TensorError};
use std::any::Any;

/// Gradients of one backward pass, as the backend keeps them.
pub type Grads = Box<dyn Any>;

/// Geometry of a 2-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvOpts {
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (both axes).
    pub padding: usize,
    /// Channel groups (1: dense; ResNeXt: 32).
    pub groups: usize,
}

impl Default for ConvOpts {
    fn default() -> Self {
        Self { stride: 1, padding: 0, groups: 1 }
    }
}

/// What batch normalisation takes besides its input ([`NnOps::batch_norm`]): the affine
/// parameters, the running statistics, the mode and PyTorch's `momentum` and `eps`.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormArgs<'a> {
    /// Per-channel scale (γ).
    pub weight: &'a Tensor,
    /// Per-channel shift (β).
    pub bias: &'a Tensor,
    /// Running mean (read in evaluation, updated in training).
    pub running_mean: &'a Tensor,
    /// Running variance (read in evaluation, updated in training).
    pub running_var: &'a Tensor,
    /// Training mode: batch statistics and a running-statistics update.
    pub train: bool,
    /// Weight of the batch statistics in the running update.
    pub momentum: f64,
    /// Added to the variance.
    pub eps: f64,
}

/// Geometry of a 2-D pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOpts {
    /// Window side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding (pads with −∞ for max pooling).
    pub padding: usize,
}

impl PoolOpts {
    /// A `k×k` window moving by `k`, no padding.
    pub fn square(k: usize) -> Self {
        Self { kernel: k, stride: k, padding: 0 }
    }
}

/// Creation, host transfer and shapes.
pub trait CreationOps {
    /// A float tensor from row-major host values.
    fn upload(&self, data: &[f32], shape: &[usize]) -> TResult<Tensor>;
    /// An integer (index) tensor from row-major host values, for [`NnOps::gather`].
    fn upload_index(&self, data: &[i64], shape: &[usize]) -> TResult<Tensor>;
    /// A float tensor's values, row-major, on the host.
    fn download(&self, t: &Tensor) -> TResult<Vec<f32>>;
    /// The shape.
    fn shape(&self, t: &Tensor) -> TResult<Vec<usize>>;
    /// A copy that shares no storage with `t`.
    fn deep_copy(&self, t: &Tensor) -> TResult<Tensor>;
}

/// Automatic differentiation.
pub trait AutodiffOps {
    /// A parameter or buffer as the model stores it between steps.
    fn parameter(&self, data: &[f32], shape: &[usize], trainable: bool) -> TResult<Tensor>;
    /// The view of a stored parameter that a training forward pass uses: tracked (gradients
    /// wanted) when `trainable`, a constant otherwise.
    fn leaf(&self, stored: &Tensor, trainable: bool) -> TResult<Tensor>;
    /// Back-propagate from a scalar.
    fn backward(&self, loss: &Tensor) -> TResult<Grads>;
    /// The gradient of a leaf made by [`leaf`](Self::leaf); `None` when the loss does not reach it.
    fn grad(&self, grads: &Grads, leaf: &Tensor) -> TResult<Option<Tensor>>;
    /// Forget a leaf's gradient after the optimiser used it (backends that accumulate).
    fn clear_grad(&self, _leaf: &Tensor) -> TResult<()> {
        Ok(())
    }
    /// The same values, cut from the autodiff graph.
    fn detach(&self, t: &Tensor) -> TResult<Tensor>;
    /// No graph is recorded while the returned guard lives.
    fn no_grad(&self) -> Box<dyn Any>;
}

/// Element-wise math, reductions and layout.
pub trait MathOps: CreationOps {
    /// `a + b`.
    fn add(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor>;
    /// `a − b`.
    fn sub(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor>;
    /// `a · b`.
    fn mul(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor>;
    /// `a / b`.
    fn div(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor>;
    /// `t + s`.
    fn add_scalar(&self, t: &Tensor, s: f64) -> TResult<Tensor>;
    /// `t · s`.
    fn mul_scalar(&self, t: &Tensor, s: f64) -> TResult<Tensor>;
    /// `t ^ p`.
    fn powf_scalar(&self, t: &Tensor, p: f64) -> TResult<Tensor>;
    /// `−t`.
    fn neg(&self, t: &Tensor) -> TResult<Tensor> {
        self.mul_scalar(t, -1.0)
    }
    /// `exp(t)`.
    fn exp(&self, t: &Tensor) -> TResult<Tensor>;
    /// `ln(1 + t)`.
    fn log1p(&self, t: &Tensor) -> TResult<Tensor>;
    /// `|t|`.
    fn abs(&self, t: &Tensor) -> TResult<Tensor>;
    /// `√t`.
    fn sqrt(&self, t: &Tensor) -> TResult<Tensor>;
    /// `max(t, 0)`.
    fn relu(&self, t: &Tensor) -> TResult<Tensor>;
    /// Sum over `dims`.
    fn sum_dims(&self, t: &Tensor, dims: &[usize], keepdim: bool) -> TResult<Tensor>;
    /// Mean over `dims`.
    fn mean_dims(&self, t: &Tensor, dims: &[usize], keepdim: bool) -> TResult<Tensor>;
    /// Sum of every element, `[1]`.
    fn sum_all(&self, t: &Tensor) -> TResult<Tensor> {
        let n: usize = self.shape(t)?.iter().product();
        self.sum_dims(&self.reshape(t, &[n])?, &[0], true)
    }
    /// Mean of every element, `[1]`.
    fn mean_all(&self, t: &Tensor) -> TResult<Tensor> {
        let n: usize = self.shape(t)?.iter().product();
        self.mean_dims(&self.reshape(t, &[n])?, &[0], true)
    }
    /// Index of the largest value along `dim` (that dimension removed), as floats.
    fn argmax(&self, t: &Tensor, dim: usize) -> TResult<Tensor>;
    /// The same values in another shape.
    fn reshape(&self, t: &Tensor, shape: &[usize]) -> TResult<Tensor>;
    /// Swap two dimensions.
    fn transpose(&self, t: &Tensor, d0: usize, d1: usize) -> TResult<Tensor>;
    /// Concatenate along `dim`.
    fn cat(&self, ts: &[Tensor], dim: usize) -> TResult<Tensor>;
    /// Stack along a new dimension `dim`.
    fn stack(&self, ts: &[Tensor], dim: usize) -> TResult<Tensor> {
        let mut parts = Vec::with_capacity(ts.len());
        for t in ts {
            let mut s = self.shape(t)?;
            s.insert(dim, 1);
            parts.push(self.reshape(t, &s)?);
        }
        self.cat(&parts, dim)
    }
    /// Elements `start, start + step, ... < end` along `dim`.
    fn slice(&self, t: &Tensor, dim: usize, start: usize, end: usize, step: usize) -> TResult<Tensor>;
    /// Zero padding of `before` and `after` elements along `dim`.
    fn pad(&self, t: &Tensor, dim: usize, before: usize, after: usize) -> TResult<Tensor>;
}

/// Neural-network primitives.
pub trait NnOps: MathOps {
    /// 2-D convolution, weight `[out, in / groups, k, k]`, optional bias `[out]`.
    fn conv2d(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, opts: ConvOpts) -> TResult<Tensor>;
    /// Matrix product of `[n, k]` and `[k, m]`.
    fn matmul(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor>;
    /// `x · Wᵀ + b` for `x: [n, in]`, `W: [out, in]`, `b: [out]`.
    fn linear(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> TResult<Tensor> {
        let y = self.matmul(x, &self.transpose(w, 0, 1)?)?;
        match b {
            Some(b) => {
                let out = self.shape(b)?[0];
                self.add(&y, &self.reshape(b, &[1, out])?)
            }
            None => Ok(y),
        }
    }
    /// Batch normalisation over every axis but 1. In training: batch statistics, and the new
    /// running statistics (`momentum` update, unbiased variance) either written into `rm`/`rv`
    /// in place (returns `None`) or returned (detached). In evaluation: the running statistics.
    fn batch_norm(&self, x: &Tensor, a: BatchNormArgs<'_>) -> TResult<(Tensor, Option<(Tensor, Tensor)>)>;
    /// Max pooling of `[N, C, H, W]` with a square window.
    fn max_pool2d(&self, x: &Tensor, opts: PoolOpts) -> TResult<Tensor>;
    /// Bilinear resize of `[N, C, H, W]` (align_corners = false).
    fn resize_bilinear(&self, x: &Tensor, size: [usize; 2]) -> TResult<Tensor>;
    /// `log softmax` along `dim`.
    fn log_softmax(&self, x: &Tensor, dim: usize) -> TResult<Tensor>;
    /// `out[..., i, ...] = x[..., index[..., i, ...], ...]` along `dim` (same rank).
    fn gather(&self, x: &Tensor, dim: usize, index: &Tensor) -> TResult<Tensor>;
    /// Numerically stable `ln(1 + eˣ)`: `max(x, 0) + ln(1 + e^(−|x|))`.
    fn softplus(&self, x: &Tensor) -> TResult<Tensor> {
        let tail = self.log1p(&self.exp(&self.neg(&self.abs(x)?)?)?)?;
        self.add(&self.relu(x)?, &tail)
    }
}

/// In-place variants, where they save memory or time. Defaults replace the handle's tensor.
pub trait InplaceOps: MathOps {
    /// `t = max(t, 0)`.
    fn relu_(&self, t: &mut Tensor) -> TResult<()> {
        *t = self.relu(t)?;
        Ok(())
    }
    /// `a = a + b`.
    fn add_(&self, a: &mut Tensor, b: &Tensor) -> TResult<()> {
        *a = self.add(a, b)?;
        Ok(())
    }
    /// `dst = src` reshaped to `dst`'s shape (in place keeps `dst`'s storage and layout).
    fn assign_(&self, dst: &mut Tensor, src: &Tensor) -> TResult<()> {
        *dst = self.reshape(src, &self.shape(dst)?)?;
        Ok(())
    }
    /// `a = α·a + β·b` (optimiser updates; in place keeps a parameter's identity).
    fn axpby_(&self, a: &mut Tensor, alpha: f64, b: &Tensor, beta: f64) -> TResult<()> {
        let scaled = if alpha == 1.0 { a.clone() } else { self.mul_scalar(a, alpha)? };
        *a = self.add(&scaled, &self.mul_scalar(b, beta)?)?;
        Ok(())
    }
}

/// Fused fast paths of composite operations the built-in nodes use.
pub trait FusedOps: MathOps {
    /// The option-A shortcut of CIFAR ResNets: every second pixel, channels zero-padded by `pad`
    /// on each side.
    fn option_a_shortcut(&self, x: &Tensor, pad: usize) -> TResult<Tensor> {
        let s = self.shape(x)?;
        let sub = self.slice(&self.slice(x, 2, 0, s[2], 2)?, 3, 0, s[3], 2)?;
        self.pad(&sub, 1, pad, pad)
    }
}

/// Reduced precision for the matrix products of a forward pass, with float32 parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in float32.
    #[default]
    Fp32,
    /// Convolutions and matrix products in bfloat16 (CPUs with AVX-512 BF16 / AMX, GPUs).
    Bf16,
    /// Convolutions and matrix products in float16 (CUDA).
    Fp16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            "fp16" => Ok(Precision::Fp16),
            other => Err(format!("unknown precision `{other}`: fp32, bf16 or fp16").into()),
        }
    }
}

/// Mixed precision and memory layout. The defaults are float32 and the plain layout; a backend
/// that has autocast (libtorch) overrides them.
pub trait PrecisionOps: CreationOps {
    /// Enter (`Some(p)`, p ≠ fp32) or leave (`None`) a region whose convolutions and matrix
    /// products run in `p` (autocast). Default: only fp32.
    fn autocast(&self, p: Option<Precision>) -> TResult<()> {
        match p {
            None | Some(Precision::Fp32) => Ok(()),
            Some(p) => Err(TensorError::new(format!("this backend has no {p} mixed precision: use --backend tch"))),
        }
    }
    /// `t` in float32 (losses and statistics are computed in float32 under autocast).
    fn float32(&self, t: &Tensor) -> TResult<Tensor> {
        Ok(t.clone())
    }
    /// A 4-d tensor in channels-last layout (faster convolutions where the library has them).
    fn channels_last(&self, t: &Tensor) -> TResult<Tensor> {
        Ok(t.clone())
    }
}

fn not_joined() -> TensorError {
    TensorError::new("this process has not joined a data-parallel run")
}

/// The run's rendezvous store as a handle a thread can keep (rank 0's heartbeat, see
/// `npe_core::dist::Heartbeat`).
pub trait SharedStore: Send + Sync {
    /// Set `key`.
    fn set(&self, key: &str, value: &[u8]) -> TResult<()>;
}

/// Collectives over the ranks of a data-parallel run, on the library's own engine (libtorch's
/// c10d): npe has no collective layer. The defaults are a single process's, and joining a run
/// needs a backend that overrides them. `npe_core::dist` builds the training steps on these.
pub trait DistOps: CreationOps {
    /// Join the run `world` describes: blocks until every rank has joined or `world.timeout`
    /// has passed.
    fn join(&self, _world: &super::World) -> TResult<()> {
        Err(TensorError::new(
            "this backend has no collective engine for data-parallel training: use --backend tch (libtorch's c10d: Gloo on CPUs, NCCL on GPUs)",
        ))
    }
    /// In-place sum over ranks of a 1-d tensor (a single process: unchanged).
    fn all_reduce_(&self, _t: &mut Tensor) -> TResult<()> {
        Ok(())
    }
    /// In-place copy of rank `root`'s 1-d tensor to every rank.
    fn broadcast_(&self, _t: &mut Tensor, _root: usize) -> TResult<()> {
        Ok(())
    }
    /// The sum over ranks, differentiable: its gradient is the sum over ranks of the output's
    /// gradient (synchronised batch norm).
    fn all_reduce_autograd(&self, t: &Tensor) -> TResult<Tensor> {
        Ok(t.clone())
    }
    /// Set `key` in the run's rendezvous store.
    fn store_set(&self, _key: &str, _value: &[u8]) -> TResult<()> {
        Err(not_joined())
    }
    /// `key`'s value, waiting up to `timeout` for another rank to set it.
    fn store_get(&self, _key: &str, _timeout: std::time::Duration) -> TResult<Vec<u8>> {
        Err(not_joined())
    }
    /// Whether `key` is set (does not wait).
    fn store_check(&self, _key: &str) -> TResult<bool> {
        Err(not_joined())
    }
    /// The store as a handle a thread can keep, once joined (`None`: no heartbeat, the other
    /// ranks then wait for rank 0 without telling slow from dead).
    fn shared_store(&self) -> Option<std::sync::Arc<dyn SharedStore>> {
        None
    }
}

/// Everything a backend provides. Implement the families and `describe`.
pub trait Ops: CreationOps + AutodiffOps + NnOps + InplaceOps + FusedOps + PrecisionOps + DistOps {
    /// Library, device and threads, for logs and reports.
    fn describe(&self) -> String;
}
