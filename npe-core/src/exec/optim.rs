//! The optimisers, PyTorch semantics, written once over the tensor operations: SGD
//! (`torch.optim.SGD`: decay added to the gradient, momentum buffer starting at the first
//! gradient, dampening, Nesterov) and AdamW (`torch.optim.AdamW`: decoupled decay, bias
//! correction). Parameter groups scale the learning rate, switch decay and pick the optimiser
//! per node.

use super::Store;
use crate::backend::ExecError;
use crate::spec::{OptimizerKind, OptimizerSpec};
use crate::tensor::{Ops, Tensor};
use crate::types::{NamedTensor, ParamSpec};

/// Name of AdamW's step counter in exported state.
const STEP: &str = "optimizer.step";

/// Optimiser state and per-parameter settings.
pub struct Optimizer {
    spec: OptimizerSpec,
    kind: Vec<OptimizerKind>,
    lr_scale: Vec<f64>,
    decay: Vec<bool>,
    /// SGD: momentum buffers; AdamW: first moments.
    first: Vec<Option<Tensor>>,
    /// AdamW: second moments.
    second: Vec<Option<Tensor>>,
    steps: u64,
}

impl Optimizer {
    /// For the parameters `specs`, with `spec.param_groups` applied (a later group wins).
    pub fn new(spec: &OptimizerSpec, specs: &[ParamSpec]) -> Self {
        let mut kind = vec![spec.kind; specs.len()];
        let mut lr_scale = vec![1.0; specs.len()];
        let mut decay: Vec<bool> = specs.iter().map(|s| s.decay).collect();
        for g in &spec.param_groups {
            for (i, s) in specs.iter().enumerate().filter(|(_, s)| g.nodes.contains(&s.node)) {
                lr_scale[i] = g.lr_scale;
                kind[i] = g.kind.unwrap_or(kind[i]);
                if let Some(d) = g.weight_decay {
                    decay[i] = d && s.kind == crate::types::ParamKind::Weight;
                }
            }
        }
        let n = specs.len();
        Self { spec: spec.clone(), kind, lr_scale, decay, first: vec![None; n], second: vec![None; n], steps: 0 }
    }

    /// Update `params` in place from `grads` (None: not reached by the loss, not updated, as in
    /// PyTorch). Call with gradient recording off.
    pub fn step(
        &mut self,
        ops: &dyn Ops,
        params: &mut [Tensor],
        grads: &[Option<Tensor>],
        lr: f64,
    ) -> Result<(), ExecError> {
        self.steps += 1;
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            let Some(g) = g else { continue };
            let lr = lr * self.lr_scale[i];
            match self.kind[i] {
                OptimizerKind::Sgd => self.sgd(ops, i, p, g, lr)?,
                OptimizerKind::Adamw => self.adamw(ops, i, p, g, lr)?,
            }
        }
        Ok(())
    }

    fn sgd(&mut self, ops: &dyn Ops, i: usize, p: &mut Tensor, g: &Tensor, lr: f64) -> Result<(), ExecError> {
        let o = &self.spec;
        let wd = if self.decay[i] { o.weight_decay } else { 0.0 };
        let mut d = if wd != 0.0 { ops.add(g, &ops.mul_scalar(p, wd)?)? } else { g.clone() };
        if o.momentum != 0.0 {
            match &mut self.first[i] {
                None => self.first[i] = Some(ops.deep_copy(&d)?),
                Some(b) => ops.axpby_(b, o.momentum, &d, 1.0 - o.dampening)?,
            }
            let b = self.first[i].as_ref().expect("set above");
            d = if o.nesterov { ops.add(&d, &ops.mul_scalar(b, o.momentum)?)? } else { b.clone() };
        }
        ops.axpby_(p, 1.0, &d, -lr)?;
        Ok(())
    }

    fn adamw(&mut self, ops: &dyn Ops, i: usize, p: &mut Tensor, g: &Tensor, lr: f64) -> Result<(), ExecError> {
        let o = &self.spec;
        let [b1, b2] = o.betas;
        if self.decay[i] && o.weight_decay != 0.0 {
            let shrink = ops.mul_scalar(p, -lr * o.weight_decay)?;
            ops.add_(p, &shrink)?;
        }
        let g2 = ops.mul(g, g)?;
        match &mut self.first[i] {
            None => self.first[i] = Some(ops.mul_scalar(g, 1.0 - b1)?),
            Some(m) => ops.axpby_(m, b1, g, 1.0 - b1)?,
        }
        match &mut self.second[i] {
            None => self.second[i] = Some(ops.mul_scalar(&g2, 1.0 - b2)?),
            Some(v) => ops.axpby_(v, b2, &g2, 1.0 - b2)?,
        }
        let t = self.steps as i32;
        let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        let (m, v) = (self.first[i].as_ref().expect("set"), self.second[i].as_ref().expect("set"));
        let denom = ops.add_scalar(&ops.mul_scalar(&ops.sqrt(v)?, 1.0 / bc2.sqrt())?, o.eps)?;
        ops.axpby_(p, 1.0, &ops.div(m, &denom)?, -lr / bc1)?;
        Ok(())
    }

    /// The state, named after the parameters (SGD: the momentum buffer under the parameter's
    /// own name; AdamW: `NAME.exp_avg`, `NAME.exp_avg_sq` and `optimizer.step`).
    pub fn export(&self, ops: &dyn Ops, specs: &[ParamSpec]) -> Result<Vec<NamedTensor>, ExecError> {
        let mut out = vec![];
        for (i, s) in specs.iter().enumerate() {
            let adam = self.kind[i] == OptimizerKind::Adamw;
            let named = |suffix: &str, t: &Tensor| -> Result<NamedTensor, ExecError> {
                Ok(NamedTensor { name: format!("{}{suffix}", s.name), shape: s.shape.clone(), data: ops.download(t)? })
            };
            if let Some(m) = &self.first[i] {
                out.push(named(if adam { ".exp_avg" } else { "" }, m)?);
            }
            if let Some(v) = &self.second[i] {
                out.push(named(".exp_avg_sq", v)?);
            }
        }
        if self.kind.contains(&OptimizerKind::Adamw) && self.steps > 0 {
            out.push(NamedTensor { name: STEP.into(), shape: vec![1], data: vec![self.steps as f32] });
        }
        Ok(out)
    }

    /// Restore state written by [`export`](Self::export).
    pub fn import(&mut self, ops: &dyn Ops, store: &Store, tensors: &[NamedTensor]) -> Result<(), ExecError> {
        let n = store.specs.len();
        (self.first, self.second, self.steps) = (vec![None; n], vec![None; n], 0);
        for t in tensors {
            if t.name == STEP {
                self.steps = t.data.first().copied().unwrap_or(0.0) as u64;
                continue;
            }
            let adam_base = |suffix: &str| {
                t.name
                    .strip_suffix(suffix)
                    .filter(|b| store.get(b).is_some_and(|i| self.kind[i] == OptimizerKind::Adamw))
            };
            let (base, second) = match (adam_base(".exp_avg_sq"), adam_base(".exp_avg")) {
                (Some(b), _) => (b, true),
                (None, Some(b)) => (b, false),
                (None, None) => (t.name.as_str(), false),
            };
            let i = store.get(base).filter(|&i| store.specs[i].numel() == t.data.len()).ok_or_else(|| {
                ExecError::Parameter {
                    name: t.name.clone(),
                    message: "optimiser state for a parameter this model does not have (or of another size)".into(),
                }
            })?;
            let v = ops.upload(&t.data, &store.specs[i].shape)?;
            if second { self.second[i] = Some(v) } else { self.first[i] = Some(v) }
        }
        Ok(())
    }
}
