//! Parameters and buffers as libtorch tensors, by name.

use crate::error::{Result, TchBackendError};
use npe_core::model::{NamedTensor, ParamKind, ParamSpec};
use std::collections::{BTreeSet, HashMap};
use tch::{Device, Kind, Tensor};

/// Every parameter of the model with its real shape; trainable ones require grad.
pub struct ParamStore {
    /// Specs from the core, in layout order.
    pub specs: Vec<ParamSpec>,
    /// Current values.
    pub values: Vec<Tensor>,
    /// Updated by the optimiser.
    pub trainable: Vec<bool>,
    index: HashMap<String, usize>,
}

fn dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

/// A host tensor on `device` with `shape`.
pub fn upload(data: &[f32], shape: &[usize], device: Device) -> Result<Tensor> {
    Ok(Tensor::f_from_slice(data)?.f_reshape(dims(shape))?.f_to_device(device)?)
}

/// A tensor's values on the host.
pub fn download(t: &Tensor) -> Result<Vec<f32>> {
    let flat = t.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?.f_reshape([-1])?;
    Ok(Vec::<f32>::try_from(&flat)?)
}

impl ParamStore {
    /// Allocate from specs and initial values on `device`.
    pub fn new(
        specs: &[ParamSpec],
        initial: &[NamedTensor],
        frozen: &BTreeSet<String>,
        device: Device,
    ) -> Result<Self> {
        let trainable: Vec<bool> =
            specs.iter().map(|s| s.kind == ParamKind::Weight && !frozen.contains(&s.node)).collect();
        let mut values = Vec::with_capacity(specs.len());
        for ((s, t), &train) in specs.iter().zip(initial).zip(&trainable) {
            if s.name != t.name {
                return Err(TchBackendError::Internal(format!(
                    "initial value `{}` for parameter `{}`",
                    t.name, s.name
                )));
            }
            values.push(upload(&t.data, &s.shape, device)?.f_set_requires_grad(train)?);
        }
        let index = specs.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        Ok(Self { specs: specs.to_vec(), values, trainable, index })
    }

    /// Index of a parameter.
    pub fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Host copy of every parameter.
    pub fn export(&self) -> Result<Vec<NamedTensor>> {
        self.specs
            .iter()
            .zip(&self.values)
            .map(|(s, v)| Ok(NamedTensor { name: s.name.clone(), shape: s.shape.clone(), data: download(v)? }))
            .collect()
    }
}
