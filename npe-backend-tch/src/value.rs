//! Values flowing along the graph's edges.

use tch::Tensor;

/// A node's output on the device.
#[derive(Debug)]
pub enum Act {
    /// `[N, C]` vectors.
    Vec(Tensor),
    /// `[N, C, H, W]` maps.
    Map(Tensor),
    /// The outputs of M PEMs.
    Pems(Vec<Act>),
    /// A scalar loss.
    Loss(Tensor),
}

impl Clone for Act {
    fn clone(&self) -> Self {
        match self {
            Act::Vec(t) => Act::Vec(t.shallow_clone()),
            Act::Map(t) => Act::Map(t.shallow_clone()),
            Act::Pems(v) => Act::Pems(v.clone()),
            Act::Loss(t) => Act::Loss(t.shallow_clone()),
        }
    }
}

impl Act {
    /// The tensor (vectors and maps).
    pub fn tensor(&self) -> &Tensor {
        match self {
            Act::Vec(t) | Act::Map(t) | Act::Loss(t) => t,
            Act::Pems(_) => panic!("PEM outputs are not one tensor"),
        }
    }

    /// Flattened to `[N, features]`.
    pub fn into_flat(self) -> Tensor {
        match self {
            Act::Vec(t) => t,
            Act::Map(t) => t.flatten(1, -1),
            other => panic!("expected a tensor, got {other:?}"),
        }
    }

    /// As a map (vectors become `[N, C, 1, 1]`).
    pub fn into_map(self) -> Tensor {
        match self {
            Act::Map(t) => t,
            Act::Vec(t) => t.unsqueeze(-1).unsqueeze(-1),
            other => panic!("expected a tensor, got {other:?}"),
        }
    }

    /// The PEM outputs.
    pub fn into_pems(self) -> Vec<Act> {
        match self {
            Act::Pems(v) => v,
            other => panic!("expected PEM outputs, got {other:?}"),
        }
    }
}
