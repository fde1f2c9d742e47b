//! The model's parameters, declared by the core: names (PyTorch-style, prefixed by the node),
//! shapes, initialisation and weight-decay policy. Backends allocate exactly these, so both
//! backends start from identical values under a seed and export the same safetensors names.

mod init;
mod layout;

pub use init::{Init, initial_values};
pub use layout::{layout, node_layout};

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
