//! Linear, convolution and batch-norm layers.

use crate::backend::ExecError;
use crate::kind::{Cx, Declare, ParamId};
use crate::tensor::{BatchNormArgs, ConvOpts, TResult, Tensor};
use crate::types::Init;

/// PyTorch's batch-norm defaults.
const BN_MOMENTUM: f64 = 0.1;
const BN_EPS: f64 = 1e-5;

/// PyTorch's default Linear/Conv init: U(±1/√fan_in) for weight and bias.
pub fn torch_default(fan_in: usize) -> Init {
    Init::Uniform { bound: 1.0 / (fan_in.max(1) as f64).sqrt() }
}

/// Kaiming normal (fan-in, ReLU gain).
pub fn kaiming(fan_in: usize) -> Init {
    Init::KaimingNormal { fan_in }
}

/// `y = x · Wᵀ + b`, `W: [out, in]` (`name.weight`, `name.bias`).
#[derive(Clone, Debug)]
pub struct Linear {
    weight: ParamId,
    bias: Option<ParamId>,
}

impl Linear {
    /// With PyTorch's default initialisation.
    pub fn new(d: &mut Declare, name: &str, inp: usize, out: usize, bias: bool) -> Self {
        Self::with_init(d, name, inp, out, torch_default(inp), bias.then(|| torch_default(inp)))
    }

    /// With explicit initialisations (no bias when `bias` is `None`).
    pub fn with_init(d: &mut Declare, name: &str, inp: usize, out: usize, weight: Init, bias: Option<Init>) -> Self {
        let mut d = d.scope(name);
        Self { weight: d.weight("weight", vec![out, inp], weight), bias: bias.map(|b| d.weight("bias", vec![out], b)) }
    }

    /// `x: [N, in]` → `[N, out]`.
    pub fn forward(&self, cx: &Cx, x: &Tensor) -> TResult<Tensor> {
        cx.ops.linear(x, cx.param(self.weight), self.bias.map(|b| cx.param(b)))
    }
}

/// 2-D convolution, `W: [out, in, k, k]` (`name.weight`, optional `name.bias`).
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: ParamId,
    bias: Option<ParamId>,
    opts: ConvOpts,
}

impl Conv2d {
    /// A `k×k` convolution with stride 1 and no padding (see [`stride`](Self::stride),
    /// [`padding`](Self::padding)).
    pub fn new(d: &mut Declare, name: &str, [out, inp, k]: [usize; 3], weight: Init, bias: Option<Init>) -> Self {
        Self::grouped(d, name, [out, inp, k], 1, weight, bias)
    }

    /// A grouped convolution (`groups` divides `inp` and `out`): weight `[out, inp / groups, k, k]`.
    pub fn grouped(
        d: &mut Declare,
        name: &str,
        [out, inp, k]: [usize; 3],
        groups: usize,
        weight: Init,
        bias: Option<Init>,
    ) -> Self {
        let mut d = d.scope(name);
        Self {
            weight: d.weight("weight", vec![out, inp / groups, k, k], weight),
            bias: bias.map(|b| d.weight("bias", vec![out], b)),
            opts: ConvOpts { groups, ..ConvOpts::default() },
        }
    }

    /// With this stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.opts.stride = stride;
        self
    }

    /// With this zero padding.
    pub fn padding(mut self, padding: usize) -> Self {
        self.opts.padding = padding;
        self
    }

    /// `[N, in, H, W]` → `[N, out, H', W']`.
    pub fn forward(&self, cx: &Cx, x: &Tensor) -> TResult<Tensor> {
        cx.ops.conv2d(x, cx.param(self.weight), self.bias.map(|b| cx.param(b)), self.opts)
    }
}

/// Batch normalisation with running statistics (`weight`, `bias`, `running_mean`,
/// `running_var`), PyTorch defaults (momentum 0.1, eps 1e-5).
#[derive(Clone, Debug)]
pub struct BatchNorm {
    weight: ParamId,
    bias: ParamId,
    mean: ParamId,
    var: ParamId,
}

impl BatchNorm {
    /// Over `channels` (axis 1).
    pub fn new(d: &mut Declare, name: &str, channels: usize) -> Self {
        let mut d = d.scope(name);
        Self {
            weight: d.weight("weight", vec![channels], Init::Ones),
            bias: d.weight("bias", vec![channels], Init::Zeros),
            mean: d.buffer("running_mean", vec![channels], Init::Zeros),
            var: d.buffer("running_var", vec![channels], Init::Ones),
        }
    }

    /// Batch statistics (and a running-statistics update) in training, running statistics in
    /// evaluation.
    pub fn forward(&self, cx: &mut Cx, x: &Tensor) -> Result<Tensor, ExecError> {
        if cx.sync_batch_norm() {
            return self.forward_synchronised(cx, x);
        }
        let args = BatchNormArgs {
            weight: cx.param(self.weight),
            bias: cx.param(self.bias),
            running_mean: cx.param(self.mean),
            running_var: cx.param(self.var),
            train: cx.train(),
            momentum: BN_MOMENTUM,
            eps: BN_EPS,
        };
        let (y, running) = cx.ops.batch_norm(x, args)?;
        if let Some((mean, var)) = running {
            cx.set_buffer(self.mean, mean);
            cx.set_buffer(self.var, var);
        }
        Ok(y)
    }
}

impl BatchNorm {
    /// Training-mode batch norm with statistics over every rank's samples (PyTorch's
    /// `SyncBatchNorm`): per-channel sums and counts, then squared deviations from the global
    /// mean (two passes: float32 loses the variance of `E[x²] − E[x]²` when the mean is large),
    /// each summed over ranks by a differentiable all-reduce, so gradients also flow through the
    /// other ranks' statistics.
    fn forward_synchronised(&self, cx: &mut Cx, x: &Tensor) -> Result<Tensor, ExecError> {
        let ops = cx.ops;
        let x = ops.float32(x)?;
        let shape = ops.shape(&x)?;
        let c = shape[1];
        let dims: Vec<usize> = (0..shape.len()).filter(|&d| d != 1).collect();
        let per_channel = shape.iter().product::<usize>() / c.max(1);
        let mut bshape = vec![1; shape.len()];
        bshape[1] = c;
        let b = |t: &Tensor| ops.reshape(t, &bshape);
        let sum = ops.sum_dims(&x, &dims, false)?;
        let count = ops.add_scalar(&ops.mul_scalar(&sum, 0.0)?, per_channel as f64)?;
        let total = ops.all_reduce_autograd(&ops.stack(&[sum, count], 0)?)?;
        let row = |i: usize| ops.reshape(&ops.slice(&total, 0, i, i + 1, 1)?, &[c]);
        let (sum, count) = (row(0)?, row(1)?);
        let mean = ops.div(&sum, &count)?;
        let centred = ops.sub(&x, &b(&mean)?)?;
        let deviations = ops.sum_dims(&ops.mul(&centred, &centred)?, &dims, false)?;
        let var = ops.div(&ops.all_reduce_autograd(&deviations)?, &count)?;
        let inv = ops.powf_scalar(&ops.add_scalar(&var, BN_EPS)?, -0.5)?;
        let scale = ops.mul(cx.param(self.weight), &inv)?;
        let y = ops.add(&ops.mul(&centred, &b(&scale)?)?, &b(cx.param(self.bias))?)?;
        // Running statistics, PyTorch's update: the unbiased variance of the global batch.
        let count = ops.detach(&count)?;
        let bessel = ops.div(&count, &ops.add_scalar(&count, -1.0)?)?;
        let unbiased = ops.mul(&ops.detach(&var)?, &bessel)?;
        let m = BN_MOMENTUM;
        let update = |old: &Tensor, new: &Tensor| -> Result<Tensor, ExecError> {
            Ok(ops.add(&ops.mul_scalar(old, 1.0 - m)?, &ops.mul_scalar(new, m)?)?)
        };
        let running_mean = update(cx.param(self.mean), &ops.detach(&mean)?)?;
        let running_var = update(cx.param(self.var), &unbiased)?;
        cx.set_buffer(self.mean, running_mean);
        cx.set_buffer(self.var, running_var);
        Ok(y)
    }
}

/// A projection that is a linear layer on vectors and a convolution on maps (heads, PEMs).
#[derive(Clone, Debug)]
pub enum Proj {
    /// On `[N, C]`.
    Linear(Linear),
    /// On `[N, C, H, W]`.
    Conv(Conv2d),
}

impl Proj {
    /// `x` → projected, same kind (vector or map).
    pub fn forward(&self, cx: &Cx, x: &Tensor) -> TResult<Tensor> {
        match self {
            Proj::Linear(l) => l.forward(cx, x),
            Proj::Conv(c) => c.forward(cx, x),
        }
    }
}
