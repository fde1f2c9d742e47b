//! The tch executor: training steps, inference, parameter and optimiser state exchange.

use crate::ctx::{Ctx, Targets};
use crate::custom::CustomKinds;
use crate::device;
use crate::error::{Result, TchBackendError};
use crate::graph::{forward, needed};
use crate::optim::sgd_update;
use crate::params::{ParamStore, download, upload};
use crate::value::Act;
use npe_core::backend::{BuildContext, ExecError, Executor, HostTensor, Request, StepLosses};
use npe_core::batch::HostBatch;
use npe_core::ir::Ir;
use npe_core::model::NamedTensor;
use npe_core::nodes::Category;
use npe_core::spec::OptimizerSpec;
use petgraph::graph::NodeIndex;
use tch::{Device, Kind, Tensor};

/// A pipeline's model on a libtorch device.
pub struct TchExecutor {
    ir: Ir,
    store: ParamStore,
    momentum: Vec<Option<Tensor>>,
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

impl TchExecutor {
    /// Allocate the model of `ir` as `ctx` says.
    pub fn new(ir: &Ir, ctx: &BuildContext, custom: CustomKinds) -> std::result::Result<Self, ExecError> {
        device::tune_allocator();
        device::set_threads(ctx.threads);
        let device = device::resolve(ctx.device)?;
        let store = ParamStore::new(&ctx.params, &ctx.initial, &ctx.frozen, device)?;
        let loss_nodes: Vec<(NodeIndex, String)> =
            ir.ops_of(Category::Loss).map(|(n, _)| (ir.index_of(&n.name).expect("node"), n.name.clone())).collect();
        let names: Vec<&str> = loss_nodes.iter().map(|(_, n)| n.as_str()).collect();
        let train_nodes = needed(ir, &names);
        let describe = match ctx.device {
            npe_core::backend::Device::Cpu => {
                format!("tch 0.26 / libtorch 2.13 (cpu, {} threads)", tch::get_num_threads())
            }
            d => format!("tch 0.26 / libtorch 2.13 ({d})"),
        };
        let momentum = (0..store.values.len()).map(|_| None).collect();
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

    fn images(&self, batch: &HostBatch) -> Result<Tensor> {
        upload(&batch.images, &batch.shape, self.device)
    }

    fn targets(&self, batch: &HostBatch) -> Result<Targets> {
        let n = batch.len() as i64;
        if batch.dense {
            let [_, _, h, w] = batch.shape.map(|d| d as i64);
            let idx: Vec<i64> =
                batch.labels.iter().map(|&l| if l != self.ignore_index && l >= 0 { l } else { 0 }).collect();
            let valid: Vec<f32> =
                batch.labels.iter().map(|&l| (l != self.ignore_index && l >= 0) as u8 as f32).collect();
            let count = valid.iter().filter(|&&v| v > 0.0).count();
            Ok(Targets::Pixels {
                index: Tensor::f_from_slice(&idx)?.f_reshape([n, 1, h, w])?.f_to_device(self.device)?,
                valid: Tensor::f_from_slice(&valid)?.f_reshape([n, 1, h, w])?.f_to_device(self.device)?,
                count,
            })
        } else {
            Ok(Targets::Classes(Tensor::f_from_slice(&batch.labels)?.f_reshape([n, 1])?.f_to_device(self.device)?))
        }
    }

    fn ctx(&self, train: bool, targets: Option<Targets>) -> Result<Ctx<'_>> {
        Ok(Ctx {
            store: &self.store,
            train,
            device: self.device,
            targets,
            log_prior: Tensor::f_from_slice(&self.log_prior)?.f_to_device(self.device)?,
            frozen: &self.frozen,
        })
    }

    fn loss_tensors(&self, batch: &HostBatch, train: bool) -> Result<Vec<Tensor>> {
        let ctx = self.ctx(train, Some(self.targets(batch)?))?;
        let acts = forward(&ctx, &self.ir, &self.train_nodes, self.images(batch)?, &self.custom)?;
        self.loss_nodes
            .iter()
            .map(|(i, name)| match acts.get(i) {
                Some(Act::Loss(t)) => Ok(t.shallow_clone()),
                _ => Err(TchBackendError::Internal(format!("loss `{name}` produced no scalar"))),
            })
            .collect()
    }

    fn step_losses(&self, parts: &[Tensor]) -> Result<StepLosses> {
        let stacked =
            Tensor::f_stack(&parts.iter().map(|t| t.f_reshape([1])).collect::<std::result::Result<Vec<_>, _>>()?, 0)?
                .f_detach()?;
        let host = download(&stacked)?;
        let parts: Vec<(String, f64)> =
            self.loss_nodes.iter().zip(&host).map(|((_, n), v)| (n.clone(), *v as f64)).collect();
        let total = parts.iter().map(|(_, v)| v).sum();
        Ok(StepLosses { parts, total })
    }

    fn train_step_inner(&mut self, batch: &HostBatch, lr: f64) -> Result<StepLosses> {
        let parts = self.loss_tensors(batch, true)?;
        let losses = self.step_losses(&parts)?;
        let total =
            parts.into_iter().reduce(|a, b| a + b).ok_or_else(|| TchBackendError::Internal("no loss".into()))?;
        total.f_backward()?;
        let opt = self.opt.clone();
        tch::no_grad(|| -> Result<()> {
            for i in 0..self.store.values.len() {
                if !self.store.trainable[i] {
                    continue;
                }
                let mut g = self.store.values[i].grad();
                // Parameters the losses do not reach have no gradient and, as in PyTorch, no update.
                if !g.defined() {
                    continue;
                }
                let decay = self.store.specs[i].decay;
                sgd_update(&mut self.store.values[i], &g, &mut self.momentum[i], lr, &opt, decay)?;
                let _ = g.f_zero_()?;
            }
            Ok(())
        })?;
        Ok(losses)
    }

    fn infer_inner(&self, batch: &HostBatch, requests: &[Request]) -> Result<Vec<HostTensor>> {
        tch::no_grad(|| {
            let names: Vec<&str> = requests
                .iter()
                .map(|r| match r {
                    Request::Output(n) | Request::Argmax(n) | Request::SpatialMean(n) => n.as_str(),
                })
                .collect();
            let nodes = needed(&self.ir, &names);
            let ctx = self.ctx(false, None)?;
            let acts = forward(&ctx, &self.ir, &nodes, self.images(batch)?, &self.custom)?;
            let get = |n: &str| -> Result<Act> {
                let i = self.ir.index_of(n).ok_or_else(|| TchBackendError::Internal(format!("unknown node `{n}`")))?;
                acts.get(&i).cloned().ok_or_else(|| TchBackendError::Internal(format!("node `{n}` was not computed")))
            };
            let host = |t: &Tensor| -> Result<HostTensor> {
                Ok(HostTensor { shape: t.size().iter().map(|&d| d as usize).collect(), data: download(t)? })
            };
            let mut out = vec![];
            for r in requests {
                out.push(match r {
                    Request::Output(n) => match get(n)? {
                        Act::Pems(v) => host(&Tensor::f_stack(
                            &v.iter().map(|a| a.tensor().shallow_clone()).collect::<Vec<_>>(),
                            0,
                        )?)?,
                        a => host(a.tensor())?,
                    },
                    Request::Argmax(n) => match get(n)? {
                        Act::Vec(t) | Act::Map(t) => host(&t.f_argmax(1, false)?.f_to_kind(Kind::Float)?)?,
                        other => {
                            return Err(TchBackendError::Internal(format!("argmax of {other:?}")));
                        }
                    },
                    Request::SpatialMean(n) => {
                        let v: Vec<Tensor> = get(n)?
                            .into_pems()
                            .into_iter()
                            .map(|a| match a {
                                Act::Map(t) => t.f_mean_dim([2i64, 3].as_slice(), false, Kind::Float),
                                other => Ok(other.into_flat()),
                            })
                            .collect::<std::result::Result<_, _>>()?;
                        host(&Tensor::f_stack(&v, 0)?)?
                    }
                });
            }
            Ok(out)
        })
    }
}

impl Executor for TchExecutor {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn train_step(&mut self, batch: &HostBatch, lr: f64) -> std::result::Result<StepLosses, ExecError> {
        Ok(self.train_step_inner(batch, lr)?)
    }

    fn losses(&mut self, batch: &HostBatch) -> std::result::Result<StepLosses, ExecError> {
        // Training-mode forward would update BN running statistics in place; keep them.
        let saved: Vec<(usize, Tensor)> = self
            .store
            .specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == npe_core::model::ParamKind::Buffer)
            .map(|(i, _)| (i, self.store.values[i].copy()))
            .collect();
        let r = tch::no_grad(|| -> Result<StepLosses> {
            let parts = self.loss_tensors(batch, true)?;
            self.step_losses(&parts)
        });
        tch::no_grad(|| {
            for (i, t) in saved {
                self.store.values[i].copy_(&t);
            }
        });
        Ok(r?)
    }

    fn infer(&mut self, batch: &HostBatch, requests: &[Request]) -> std::result::Result<Vec<HostTensor>, ExecError> {
        Ok(self.infer_inner(batch, requests)?)
    }

    fn export(&self) -> std::result::Result<Vec<NamedTensor>, ExecError> {
        Ok(self.store.export()?)
    }

    fn import(&mut self, tensors: &[NamedTensor]) -> std::result::Result<(), ExecError> {
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
            let v = upload(&t.data, &t.shape, self.device)?;
            tch::no_grad(|| self.store.values[i].f_copy_(&v)).map_err(TchBackendError::from)?;
        }
        Ok(())
    }

    fn export_optimizer(&self) -> std::result::Result<Vec<NamedTensor>, ExecError> {
        let mut out = vec![];
        for (i, b) in self.momentum.iter().enumerate() {
            if let Some(b) = b {
                out.push(NamedTensor {
                    name: self.store.specs[i].name.clone(),
                    shape: self.store.specs[i].shape.clone(),
                    data: download(b)?,
                });
            }
        }
        Ok(out)
    }

    fn import_optimizer(&mut self, tensors: &[NamedTensor]) -> std::result::Result<(), ExecError> {
        self.momentum = (0..self.store.values.len()).map(|_| None).collect();
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
            self.momentum[i] = Some(upload(&t.data, &self.store.specs[i].shape, self.device)?);
        }
        Ok(())
    }
}
