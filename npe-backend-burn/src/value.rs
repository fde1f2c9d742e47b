//! Values flowing along the graph's edges.

use burn::tensor::Tensor;

/// A node's output on the device.
#[derive(Clone, Debug)]
pub enum Act {
    /// `[N, C]` vectors.
    Vec(Tensor<2>),
    /// `[N, C, H, W]` maps.
    Map(Tensor<4>),
    /// The outputs of M PEMs (each a `Vec` or `Map`).
    Pems(Vec<Act>),
    /// A scalar loss `[1]`.
    Loss(Tensor<1>),
}

impl Act {
    /// As a 4-D tensor (vectors become `[N, C, 1, 1]`).
    pub fn into_map(self) -> Tensor<4> {
        match self {
            Act::Map(t) => t,
            Act::Vec(t) => {
                let [n, c] = t.dims();
                t.reshape([n, c, 1, 1])
            }
            other => panic!("expected a tensor, got {other:?}"),
        }
    }

    /// Flattened to `[N, features]`.
    pub fn into_flat(self) -> Tensor<2> {
        match self {
            Act::Vec(t) => t,
            Act::Map(t) => {
                let [n, c, h, w] = t.dims();
                t.reshape([n, c * h * w])
            }
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
