//! Linear, convolution and batch-norm layers.

use crate::backend::ExecError;
use crate::kind::{Cx, Declare, ParamId};
use crate::tensor::{ConvOpts, TResult, Tensor};
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
        let (y, running) = cx.ops.batch_norm(
            x,
            cx.param(self.weight),
            cx.param(self.bias),
            cx.param(self.mean),
            cx.param(self.var),
            cx.train(),
            BN_MOMENTUM,
            BN_EPS,
        )?;
        if let Some((mean, var)) = running {
            cx.set_buffer(self.mean, mean);
            cx.set_buffer(self.var, var);
        }
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
