//! Parameters and buffers as flat tensors on the device, by name.

use burn::tensor::{Device, Tensor, TensorData};
use npe_core::model::{NamedTensor, ParamKind, ParamSpec};
use std::collections::{BTreeSet, HashMap};

/// Every parameter of the model, stored flat (`Tensor<1>`) with its shape; nodes reshape.
pub struct ParamStore {
    /// Specs from the core, in layout order.
    pub specs: Vec<ParamSpec>,
    /// Current values (no autodiff).
    pub values: Vec<Tensor<1>>,
    /// Updated by the optimiser (not a buffer, not frozen).
    pub trainable: Vec<bool>,
    index: HashMap<String, usize>,
}

impl ParamStore {
    /// Allocate from specs and initial values on `device`.
    pub fn new(specs: &[ParamSpec], initial: &[NamedTensor], frozen: &BTreeSet<String>, device: &Device) -> Self {
        let values = initial
            .iter()
            .map(|t| Tensor::<1>::from_data(TensorData::new(t.data.clone(), [t.data.len()]), device))
            .collect();
        let trainable = specs.iter().map(|s| s.kind == ParamKind::Weight && !frozen.contains(&s.node)).collect();
        let index = specs.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        Self { specs: specs.to_vec(), values, trainable, index }
    }

    /// Index of a parameter.
    pub fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Host copy of every parameter.
    pub fn export(&self) -> Vec<NamedTensor> {
        self.specs
            .iter()
            .zip(&self.values)
            .map(|(s, v)| NamedTensor { name: s.name.clone(), shape: s.shape.clone(), data: to_vec(v) })
            .collect()
    }
}

/// A tensor's values on the host.
pub fn to_vec<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().try_to_vec_as::<f32>().expect("f32 tensor data")
}
