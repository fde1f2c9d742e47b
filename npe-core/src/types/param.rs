//! Parameters as the core declares them, and named host tensors.

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// N(0, std²).
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// U(−bound, bound) (PyTorch's default for Linear/Conv: bound = 1/√fan_in).
    Uniform {
        /// Half-width.
        bound: f64,
    },
    /// Kaiming normal, fan-in mode, ReLU gain: N(0, 2/fan_in).
    KaimingNormal {
        /// Inputs per output unit.
        fan_in: usize,
    },
}

/// Trained by the optimiser, or a running statistic updated in the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// A trainable weight.
    Weight,
    /// A buffer (batch-norm running mean/var).
    Buffer,
}

/// One parameter or buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Full name, e.g. `features.layer1.0.conv1.weight`.
    pub name: String,
    /// Owning node.
    pub node: String,
    /// Shape (PyTorch layout: linear `[out, in]`, conv `[out, in, kh, kw]`).
    pub shape: Vec<usize>,
    /// Initial values.
    pub init: Init,
    /// Weight or buffer.
    pub kind: ParamKind,
    /// Whether weight decay applies.
    pub decay: bool,
}

impl ParamSpec {
    /// Number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Named host values (parameters, buffers, optimiser state), the exchange format between the
/// core and backends and of safetensors files.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}
