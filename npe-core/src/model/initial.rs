//! Deterministic parameter initialisation on the host.

use crate::rng::{Rng, hash_str};
use crate::types::{Init, NamedTensor, ParamSpec};

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
