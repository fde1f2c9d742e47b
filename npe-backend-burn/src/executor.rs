//! The burn executor: training steps, inference, parameter and optimiser state exchange.

use crate::ctx::{BN_MOMENTUM, Ctx, Targets};
use crate::custom::CustomKinds;
use crate::device;
use crate::error::BurnError;
use crate::graph::{forward, needed};
use crate::optim::sgd_update;
use crate::params::{ParamStore, to_vec};
use crate::value::Act;
use burn::tensor::{Device, Int, Tensor, TensorData};
use npe_core::backend::{BuildContext, ExecError, Executor, HostTensor, Request, StepLosses};
use npe_core::batch::HostBatch;
use npe_core::ir::Ir;
use npe_core::model::NamedTensor;
use npe_core::nodes::Category;
use npe_core::spec::OptimizerSpec;
use petgraph::graph::NodeIndex;
use std::cell::RefCell;

/// A pipeline's model on a burn device.
pub struct BurnExecutor {
    ir: Ir,
    store: ParamStore,
    momentum: Vec<Option<Tensor<1>>>,
    device: Device,
    opt: OptimizerSpec,
    log_prior: Vec<f32>,
    ignore_index: i64,
    custom: CustomKinds,
    train_nodes: Vec<NodeIndex>,
    frozen: std::collections::BTreeSet<String>,
    loss_nodes: Vec<(NodeIndex, String)>,
    describe: String,
}

impl BurnExecutor {
    /// Allocate the model of `ir` as `ctx` says.
    pub fn new(ir: &Ir, ctx: &BuildContext, custom: CustomKinds) -> Result<Self, ExecError> {
        device::set_threads(ctx.threads);
        let device = device::resolve(ctx.device)?;
        let store = ParamStore::new(&ctx.params, &ctx.initial, &ctx.frozen, &device);
        let loss_nodes: Vec<(NodeIndex, String)> =
            ir.ops_of(Category::Loss).map(|(n, _)| (ir.index_of(&n.name).expect("node"), n.name.clone())).collect();
        let names: Vec<&str> = loss_nodes.iter().map(|(_, n)| n.as_str()).collect();
        let train_nodes = needed(ir, &names);
        let threads = if ctx.threads > 0 { ctx.threads } else { rayon::current_num_threads() };
        let describe = match ctx.device {
            npe_core::backend::Device::Cpu => format!("burn 0.22 flex (cpu, {threads} threads)"),
            d => format!("burn 0.22 ({d})"),
        };
        let momentum = vec![None; store.values.len()];
        Ok(Self {
            ir: ir.clone(),
            store,
            momentum,
            device,
            opt: ctx.optimizer.clone(),
            log_prior: ctx.class_prior.iter().map(|p| p.max(1e-12).ln() as f32).collect(),
            ignore_index: ctx.ignore_index,
            custom,
            train_nodes,
            frozen: ctx.frozen.clone(),
            loss_nodes,
            describe,
        })
    }

    fn images(&self, batch: &HostBatch, device: &Device) -> Tensor<4> {
        Tensor::<4>::from_data(TensorData::new(batch.images.clone(), batch.shape), device)
    }

    fn targets(&self, batch: &HostBatch, device: &Device) -> Targets {
        let n = batch.len();
        if batch.dense {
            let [_, _, h, w] = batch.shape;
            let mut idx = Vec::with_capacity(batch.labels.len());
            let mut valid = Vec::with_capacity(batch.labels.len());
            let mut count = 0usize;
            for &l in &batch.labels {
                let ok = l != self.ignore_index && l >= 0;
                idx.push(if ok { l } else { 0 });
                valid.push(if ok { 1f32 } else { 0f32 });
                count += ok as usize;
            }
            Targets::Pixels {
                index: Tensor::<4, Int>::from_data(TensorData::new(idx, [n, 1, h, w]), device),
                valid: Tensor::<4>::from_data(TensorData::new(valid, [n, 1, h, w]), device),
                count,
            }
        } else {
            Targets::Classes(Tensor::<2, Int>::from_data(TensorData::new(batch.labels.clone(), [n, 1]), device))
        }
    }

    fn log_prior(&self, device: &Device) -> Tensor<1> {
        Tensor::<1>::from_data(TensorData::new(self.log_prior.clone(), [self.log_prior.len()]), device)
    }

    /// Training-mode forward; returns the loss tensors, the leaves and the pending BN updates.
    fn train_forward(
        &self,
        batch: &HostBatch,
        leaves: &[Tensor<1>],
        device: &Device,
    ) -> Result<(Vec<Tensor<1>>, Vec<crate::ctx::BnUpdate>), BurnError> {
        let ctx = Ctx {
            store: &self.store,
            tensors: leaves,
            train: true,
            device: device.clone(),
            bn: RefCell::new(vec![]),
            targets: Some(self.targets(batch, device)),
            log_prior: self.log_prior(device),
            frozen: &self.frozen,
        };
        let acts = forward(&ctx, &self.ir, &self.train_nodes, self.images(batch, device), &self.custom)?;
        let mut parts = vec![];
        for (i, name) in &self.loss_nodes {
            match acts.get(i) {
                Some(Act::Loss(t)) => parts.push(t.clone()),
                _ => {
                    return Err(BurnError::Internal(format!("loss `{name}` produced no scalar")));
                }
            }
        }
        Ok((parts, ctx.bn.into_inner()))
    }

    fn step_losses(&self, parts: &[Tensor<1>]) -> StepLosses {
        let host = to_vec(&Tensor::cat(parts.iter().map(|t| t.clone().inner()).collect(), 0));
        let parts: Vec<(String, f64)> =
            self.loss_nodes.iter().zip(&host).map(|((_, n), v)| (n.clone(), *v as f64)).collect();
        let total = parts.iter().map(|(_, v)| v).sum();
        StepLosses { parts, total }
    }

    fn apply_bn(&mut self, updates: Vec<crate::ctx::BnUpdate>) {
        for u in updates {
            let m = BN_MOMENTUM;
            let unbias = if u.n > 1 { u.n as f64 / (u.n - 1) as f64 } else { 1.0 };
            let rm = self.store.values[u.mean_idx].clone() * (1.0 - m) + u.mean * m;
            let rv = self.store.values[u.var_idx].clone() * (1.0 - m) + u.var * (m * unbias);
            self.store.values[u.mean_idx] = rm;
            self.store.values[u.var_idx] = rv;
        }
    }
}

fn host<const D: usize>(t: Tensor<D>) -> HostTensor {
    HostTensor { shape: t.dims().to_vec(), data: to_vec(&t) }
}

impl Executor for BurnExecutor {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn train_step(&mut self, batch: &HostBatch, lr: f64) -> Result<StepLosses, ExecError> {
        let ad = self.device.clone().autodiff();
        let leaves: Vec<Tensor<1>> = self
            .store
            .values
            .iter()
            .zip(&self.store.trainable)
            .map(|(v, &t)| if t { v.clone().autodiff().require_grad() } else { v.clone().autodiff() })
            .collect();
        let (parts, bn) = self.train_forward(batch, &leaves, &ad)?;
        let losses = self.step_losses(&parts);
        let total = parts.into_iter().reduce(|a, b| a + b).ok_or_else(|| BurnError::Internal("no loss".into()))?;
        let grads = total.backward();
        for i in 0..leaves.len() {
            if !self.store.trainable[i] {
                continue;
            }
            // Parameters the losses do not reach get no gradient and, as in PyTorch, no update.
            let Some(g) = leaves[i].grad(&grads) else {
                continue;
            };
            let decay = self.store.specs[i].decay;
            let p = self.store.values[i].clone();
            self.store.values[i] = sgd_update(p, g, &mut self.momentum[i], lr, &self.opt, decay);
        }
        self.apply_bn(bn);
        Ok(losses)
    }

    fn losses(&mut self, batch: &HostBatch) -> Result<StepLosses, ExecError> {
        let device = self.device.clone();
        let leaves = self.store.values.clone();
        let (parts, _) = self.train_forward(batch, &leaves, &device)?;
        Ok(self.step_losses(&parts))
    }

    fn infer(&mut self, batch: &HostBatch, requests: &[Request]) -> Result<Vec<HostTensor>, ExecError> {
        let device = self.device.clone();
        let names: Vec<&str> = requests
            .iter()
            .map(|r| match r {
                Request::Output(n) | Request::Argmax(n) | Request::SpatialMean(n) => n.as_str(),
            })
            .collect();
        let nodes = needed(&self.ir, &names);
        let ctx = Ctx {
            store: &self.store,
            tensors: &self.store.values,
            train: false,
            device: device.clone(),
            bn: RefCell::new(vec![]),
            targets: None,
            log_prior: self.log_prior(&device),
            frozen: &self.frozen,
        };
        let acts = forward(&ctx, &self.ir, &nodes, self.images(batch, &device), &self.custom)?;
        let get = |n: &str| -> Result<Act, BurnError> {
            let i = self.ir.index_of(n).ok_or_else(|| BurnError::Internal(format!("unknown node `{n}`")))?;
            acts.get(&i).cloned().ok_or_else(|| BurnError::Internal(format!("node `{n}` was not computed")))
        };
        let mut out = vec![];
        for r in requests {
            out.push(match r {
                Request::Output(n) => match get(n)? {
                    Act::Vec(t) => host(t),
                    Act::Map(t) => host(t),
                    Act::Pems(v) => match &v[0] {
                        Act::Map(_) => host(Tensor::stack::<5>(v.into_iter().map(Act::into_map).collect(), 0)),
                        _ => host(Tensor::stack::<3>(v.into_iter().map(Act::into_flat).collect(), 0)),
                    },
                    Act::Loss(t) => host(t),
                },
                Request::Argmax(n) => match get(n)? {
                    Act::Vec(t) => {
                        let [b, _] = t.dims();
                        HostTensor { shape: vec![b], data: to_vec(&t.argmax(1).float()) }
                    }
                    Act::Map(t) => {
                        let [b, _, h, w] = t.dims();
                        HostTensor { shape: vec![b, h, w], data: to_vec(&t.argmax(1).float()) }
                    }
                    other => return Err(BurnError::Internal(format!("argmax of {other:?}")).into()),
                },
                Request::SpatialMean(n) => {
                    let pems = get(n)?.into_pems();
                    let v: Vec<Tensor<2>> = pems
                        .into_iter()
                        .map(|a| match a {
                            Act::Map(t) => {
                                let [b, c, h, w] = t.dims();
                                t.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
                            }
                            other => other.into_flat(),
                        })
                        .collect();
                    host(Tensor::stack::<3>(v, 0))
                }
            });
        }
        Ok(out)
    }

    fn export(&self) -> Result<Vec<NamedTensor>, ExecError> {
        Ok(self.store.export())
    }

    fn import(&mut self, tensors: &[NamedTensor]) -> Result<(), ExecError> {
        for t in tensors {
            let i = self.store.get(&t.name).ok_or_else(|| ExecError::Parameter {
                name: t.name.clone(),
                message: "not a parameter of this model".into(),
            })?;
            let spec = &self.store.specs[i];
            if spec.shape != t.shape || t.data.len() != spec.numel() {
                return Err(ExecError::Parameter {
                    name: t.name.clone(),
                    message: format!("shape {:?} does not match the model's {:?}", t.shape, spec.shape),
                });
            }
            self.store.values[i] =
                Tensor::<1>::from_data(TensorData::new(t.data.clone(), [t.data.len()]), &self.device);
        }
        Ok(())
    }

    fn export_optimizer(&self) -> Result<Vec<NamedTensor>, ExecError> {
        Ok(self
            .momentum
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                b.as_ref().map(|b| NamedTensor {
                    name: self.store.specs[i].name.clone(),
                    shape: self.store.specs[i].shape.clone(),
                    data: to_vec(b),
                })
            })
            .collect())
    }

    fn import_optimizer(&mut self, tensors: &[NamedTensor]) -> Result<(), ExecError> {
        self.momentum = vec![None; self.store.values.len()];
        for t in tensors {
            let i = self.store.get(&t.name).ok_or_else(|| ExecError::Parameter {
                name: t.name.clone(),
                message: "optimiser state for an unknown parameter".into(),
            })?;
            if t.data.len() != self.store.specs[i].numel() {
                return Err(ExecError::Parameter {
                    name: t.name.clone(),
                    message: "optimiser state has the wrong size".into(),
                });
            }
            self.momentum[i] =
                Some(Tensor::<1>::from_data(TensorData::new(t.data.clone(), [t.data.len()]), &self.device));
        }
        Ok(())
    }
}
