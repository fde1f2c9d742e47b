//! Deterministic parameter initialisation on the host.

use super::{NamedTensor, ParamSpec};
use crate::rng::{Rng, hash_str};

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

/// Initial values of every spec: each parameter draws from its own stream (seed, name), so
/// values do not depend on declaration order.
pub fn initial_values(specs: &[ParamSpec], seed: u64) -> Vec<NamedTensor> {
    specs
        .iter()
        .map(|s| {
            let n = s.numel();
            let mut r = Rng::stream(seed, &[0x1417, hash_str(&s.name)]);
            let data: Vec<f32> = match s.init {
                Init::Zeros => vec![0.0; n],
                Init::Ones => vec![1.0; n],
                Init::Normal { std } => (0..n).map(|_| (r.normal() * std) as f32).collect(),
                Init::Uniform { bound } => (0..n).map(|_| ((2.0 * r.next_f64() - 1.0) * bound) as f32).collect(),
                Init::KaimingNormal { fan_in } => {
                    let std = (2.0 / fan_in.max(1) as f64).sqrt();
                    (0..n).map(|_| (r.normal() * std) as f32).collect()
                }
            };
            NamedTensor { name: s.name.clone(), shape: s.shape.clone(), data }
        })
        .collect()
}
