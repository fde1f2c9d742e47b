//! The model's parameters and buffers on the device, by layout position, with name-checked
//! import and export.

use crate::backend::ExecError;
use crate::tensor::{Ops, Tensor};
use crate::types::{NamedTensor, ParamKind, ParamSpec};
use std::collections::{BTreeSet, HashMap};

/// Every parameter of the model with its spec; trainable ones are updated by the optimiser.
pub struct Store {
    /// Specs in layout order.
    pub specs: Vec<ParamSpec>,
    /// Current values.
    pub values: Vec<Tensor>,
    /// Updated by the optimiser (a weight of a node that is not frozen).
    pub trainable: Vec<bool>,
    index: HashMap<String, usize>,
}

fn param_err(name: &str, message: impl Into<String>) -> ExecError {
    ExecError::Parameter { name: name.into(), message: message.into() }
}

impl Store {
    /// Allocate `specs` with their initial values (same names, same order).
    pub fn new(
        ops: &dyn Ops,
        specs: &[ParamSpec],
        initial: &[NamedTensor],
        frozen: &BTreeSet<String>,
    ) -> Result<Self, ExecError> {
        if specs.len() != initial.len() {
            return Err(ExecError::Internal(format!(
                "{} initial values for {} parameters",
                initial.len(),
                specs.len()
            )));
        }
        let trainable: Vec<bool> =
            specs.iter().map(|s| s.kind == ParamKind::Weight && !frozen.contains(&s.node)).collect();
        let mut values = Vec::with_capacity(specs.len());
        for ((s, t), &train) in specs.iter().zip(initial).zip(&trainable) {
            if s.name != t.name || t.data.len() != s.numel() {
                return Err(param_err(
                    &s.name,
                    format!("initial value given for `{}` ({} values)", t.name, t.data.len()),
                ));
            }
            values.push(ops.parameter(&t.data, &s.shape, train)?);
        }
        let index = specs.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        Ok(Self { specs: specs.to_vec(), values, trainable, index })
    }

    /// Position of a parameter.
    pub fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The position of `t`'s name, if its size fits (`what` names the tensor in errors).
    pub fn check(&self, t: &NamedTensor, what: &str) -> Result<usize, ExecError> {
        let i = self
            .get(&t.name)
            .ok_or_else(|| param_err(&t.name, format!("{what} for a name this model does not have")))?;
        let spec = &self.specs[i];
        if spec.shape != t.shape || t.data.len() != spec.numel() {
            return Err(param_err(
                &t.name,
                format!("{what} of shape {:?} does not match the model's {:?}", t.shape, spec.shape),
            ));
        }
        Ok(i)
    }

    /// Host copies of every parameter and buffer.
    pub fn export(&self, ops: &dyn Ops) -> Result<Vec<NamedTensor>, ExecError> {
        self.specs
            .iter()
            .zip(&self.values)
            .map(|(s, v)| Ok(NamedTensor { name: s.name.clone(), shape: s.shape.clone(), data: ops.download(v)? }))
            .collect()
    }

    /// Replace parameters by name; unknown names and other shapes are errors.
    pub fn import(&mut self, ops: &dyn Ops, tensors: &[NamedTensor]) -> Result<(), ExecError> {
        for t in tensors {
            let i = self.check(t, "a tensor")?;
            self.values[i] = ops.parameter(&t.data, &t.shape, self.trainable[i])?;
        }
        Ok(())
    }

    /// Positions of the buffers (running statistics).
    pub fn buffers(&self) -> impl Iterator<Item = usize> + '_ {
        self.specs.iter().enumerate().filter(|(_, s)| s.kind == ParamKind::Buffer).map(|(i, _)| i)
    }
}
