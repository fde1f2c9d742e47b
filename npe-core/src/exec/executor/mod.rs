//! The executor the training loop drives: forward passes over the lowered plan, losses,
//! backward, the optimiser step, inference requests, state exchange — on any backend's ops.

use super::{Optimizer, Plan, Store};
use crate::backend::{BuildContext, ExecError, Executor, HostTensor, Request, StepLosses};
use crate::batch::HostBatch;
use crate::dist::World;

mod parallel;
use crate::ir::Ir;
use crate::kind::{Calibration, Cx, Targets, Value};
use crate::tensor::{Ops, Precision, Tensor};
use crate::types::NamedTensor;

/// A pipeline's model on one backend's device.
pub struct GraphExecutor {
    ops: Box<dyn Ops>,
    plan: Plan,
    store: Store,
    optimizer: Optimizer,
    log_prior: Tensor,
    ignore_index: i64,
    losses: Vec<(usize, String)>,
    train_steps: Vec<usize>,
    calibrations: Vec<Option<Calibration>>,
    precision: Precision,
    channels_last: bool,
    describe: String,
    /// The data-parallel run this process trains in (see [`crate::dist`]).
    world: Option<World>,
    /// Rank 0's sign of life for the ranks waiting while it evaluates or writes checkpoints.
    heartbeat: Option<crate::dist::Heartbeat>,
    /// Exchanges made through [`all_gather`](crate::backend::Executor::all_gather): numbers the store keys, which every
    /// rank makes in the same order.
    gathers: u64,
    sync_batch_norm: bool,
}

impl GraphExecutor {
    /// Lower `ir` and allocate its parameters with `ctx`'s initial values on `ops`' device.
    pub fn new(ir: &Ir, ctx: &BuildContext, ops: Box<dyn Ops>) -> Result<Self, ExecError> {
        let plan = Plan::lower(ir);
        let store = Store::new(ops.as_ref(), &plan.specs, &ctx.initial, &ctx.frozen)?;
        let optimizer = Optimizer::new(&ctx.optimizer, &plan.specs);
        let log_prior: Vec<f32> = ctx.class_prior.iter().map(|p| p.max(1e-12).ln() as f32).collect();
        let log_prior = ops.upload(&log_prior, &[log_prior.len()])?;
        let mut store = store;
        if ir.channels_last() {
            to_channels_last(ops.as_ref(), &mut store)?;
        }
        let losses = plan.losses();
        let train_steps = plan.needed(&losses.iter().map(|(i, _)| *i).collect::<Vec<_>>());
        let precision = ir.train.precision;
        // Refuse a precision the backend or device lacks now, not at the first step.
        ops.autocast(Some(precision)).and_then(|()| ops.autocast(None))?;
        let describe = match precision {
            Precision::Fp32 => ops.describe(),
            p => format!("{}, {p} autocast", ops.describe()),
        };
        let calibrations = vec![None; plan.len()];
        Ok(Self {
            ops,
            plan,
            store,
            optimizer,
            log_prior,
            ignore_index: ctx.ignore_index,
            losses,
            train_steps,
            calibrations,
            precision,
            channels_last: ir.channels_last(),
            describe,
            world: None,
            heartbeat: None,
            gathers: 0,
            sync_batch_norm: ir.train.sync_batch_norm,
        })
    }

    fn images(&self, batch: &HostBatch) -> Result<Tensor, ExecError> {
        let x = self.ops.upload(&batch.images, &batch.shape)?;
        Ok(if self.channels_last { self.ops.channels_last(&x)? } else { x })
    }

    /// `plan.run` in the configured precision (autocast left again on every path).
    fn run(&self, cx: &mut Cx, images: Tensor, steps: &[usize]) -> Result<Vec<Option<Value>>, ExecError> {
        if self.precision == Precision::Fp32 {
            return self.plan.run(cx, images, steps);
        }
        self.ops.autocast(Some(self.precision))?;
        let out = self.plan.run(cx, images, steps);
        self.ops.autocast(None)?;
        out
    }

    fn targets(&self, batch: &HostBatch) -> Result<Targets, ExecError> {
        let ops = self.ops.as_ref();
        let n = batch.len();
        if !batch.dense {
            return Ok(Targets::Classes(ops.upload_index(&batch.labels, &[n, 1])?));
        }
        let [_, _, h, w] = batch.shape;
        let ok = |l: i64| l != self.ignore_index && l >= 0;
        let index: Vec<i64> = batch.labels.iter().map(|&l| if ok(l) { l } else { 0 }).collect();
        let valid: Vec<f32> = batch.labels.iter().map(|&l| ok(l) as u8 as f32).collect();
        Ok(Targets::Pixels {
            index: ops.upload_index(&index, &[n, 1, h, w])?,
            valid: ops.upload(&valid, &[n, 1, h, w])?,
            count: valid.iter().filter(|&&v| v > 0.0).count(),
        })
    }

    /// A training-mode forward over `params`: the loss tensors and the new buffer values.
    /// `synchronised`: batch norm over every rank's samples (a training step of a run with
    /// `train.sync_batch_norm`).
    fn train_forward(
        &self,
        batch: &HostBatch,
        params: &[Tensor],
        synchronised: bool,
    ) -> Result<(Vec<Tensor>, Vec<(usize, Tensor)>), ExecError> {
        let targets = self.targets(batch)?;
        let mut cx = Cx::new(self.ops.as_ref(), params, true, Some(&targets), &self.log_prior)
            .with_sync_batch_norm(synchronised);
        let mut values = self.run(&mut cx, self.images(batch)?, &self.train_steps)?;
        let mut parts = Vec::with_capacity(self.losses.len());
        for (i, name) in &self.losses {
            match values[*i].take() {
                Some(Value::Loss(t)) => parts.push(t),
                _ => return Err(ExecError::Internal(format!("loss `{name}` produced no scalar"))),
            }
        }
        let buffers = cx.take_buffers().into_iter().map(|(id, t)| (id.index(), t)).collect();
        Ok((parts, buffers))
    }

    /// Each loss's value, downloaded at once; in a data-parallel step (`share` of the global
    /// batch), the global batch's value.
    fn step_losses(&self, parts: &[Tensor], share: Option<f64>) -> Result<StepLosses, ExecError> {
        let ops = self.ops.as_ref();
        let mut values = ops.detach(&ops.cat(parts, 0)?)?;
        if let Some(share) = share {
            values = ops.float32(&ops.mul_scalar(&values, share)?)?;
            ops.all_reduce_(&mut values).map_err(|e| self.failed("the loss all-reduce", e))?;
        }
        let host = ops.download(&values)?;
        let parts: Vec<(String, f64)> =
            self.losses.iter().zip(&host).map(|((_, n), v)| (n.clone(), *v as f64)).collect();
        let total = parts.iter().map(|(_, v)| v).sum();
        Ok(StepLosses { parts, total })
    }
}

/// `[3, C]`: per class, `Σ w_k h̄_k`, `Σ w_k` and the count, over images (and pixels); `h̄` the
/// mean of the PEM outputs `pems` (maps resized to the weights' size; 0 without PEMs),
/// `w = softmax(weights)` (1 without weights).
fn class_sums(
    ops: &dyn Ops,
    pems: Option<&[Value]>,
    weights: Option<&Value>,
    region: Option<&Tensor>,
) -> Result<Tensor, ExecError> {
    let w = weights.map(|w| w.tensor().and_then(|t| Ok(ops.exp(&ops.log_softmax(t, 1)?)?))).transpose()?;
    let size = w.as_ref().map(|w| ops.shape(w)).transpose()?;
    let mut mean: Option<Tensor> = None;
    for h in pems.unwrap_or_default() {
        let mut t = ops.float32(h.tensor()?)?;
        let s = ops.shape(&t)?;
        if let Some(size) = size.as_ref().filter(|z| z.len() == 4 && s.len() == 4 && z[2..] != s[2..]) {
            t = ops.resize_bilinear(&t, [size[2], size[3]])?;
        }
        mean = Some(match mean {
            Some(m) => ops.add(&m, &t)?,
            None => t,
        });
    }
    let n = pems.map_or(1, <[Value]>::len) as f64;
    let mean = mean.map(|m| ops.mul_scalar(&m, 1.0 / n)).transpose()?;
    let like = w.as_ref().or(mean.as_ref()).ok_or_else(|| ExecError::Internal("class sums of nothing".into()))?;
    let dims: Vec<usize> = (0..ops.shape(like)?.len()).filter(|&d| d != 1).collect();
    let mut ones = ops.add_scalar(&ops.mul_scalar(like, 0.0)?, 1.0)?;
    // Only pixels inside the field of view count (`region`: `[N, 1, H, W]`, 1 inside).
    if let Some(r) = region {
        let s = ops.shape(like)?;
        let r = if ops.shape(r)?[2..] != s[2..] { ops.resize_bilinear(r, [s[2], s[3]])? } else { r.clone() };
        ones = ops.mul(&ones, &r)?;
    }
    let w = match w {
        Some(w) if region.is_some() => ops.mul(&w, &ones)?,
        Some(w) => w,
        None => ones.clone(),
    };
    let num = match &mean {
        Some(m) => ops.sum_dims(&ops.mul(&w, m)?, &dims, false)?,
        None => ops.sum_dims(&ops.mul_scalar(&w, 0.0)?, &dims, false)?,
    };
    let den = ops.sum_dims(&w, &dims, false)?;
    let count = ops.sum_dims(&ones, &dims, false)?;
    Ok(ops.stack(&[num, den, count], 0)?)
}

/// Convolution kernels (every 4-d parameter) in channels-last layout, as PyTorch's
/// `model.to(memory_format=torch.channels_last)`.
fn to_channels_last(ops: &dyn Ops, store: &mut Store) -> Result<(), ExecError> {
    for v in &mut store.values {
        if ops.shape(v)?.len() == 4 {
            *v = ops.channels_last(v)?;
        }
    }
    Ok(())
}

fn host(ops: &dyn Ops, t: &Tensor) -> Result<HostTensor, ExecError> {
    Ok(HostTensor { shape: ops.shape(t)?, data: ops.download(t)? })
}

impl Executor for GraphExecutor {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn train_step(&mut self, batch: &HostBatch, lr: f64) -> Result<StepLosses, ExecError> {
        let ops = self.ops.as_ref();
        let leaves: Vec<Tensor> = self
            .store
            .values
            .iter()
            .zip(&self.store.trainable)
            .map(|(p, &t)| ops.leaf(p, t))
            .collect::<Result<_, _>>()?;
        let share = match self.world {
            Some(_) => Some(self.share_of_global_batch(batch)?),
            None => None,
        };
        let (parts, buffers) = self.train_forward(batch, &leaves, share.is_some() && self.sync_batch_norm)?;
        let losses = self.step_losses(&parts, share)?;
        let mut total = parts[0].clone();
        for p in &parts[1..] {
            total = ops.add(&total, p)?;
        }
        if let Some(share) = share {
            // Each rank minimises its share of the global batch's loss, so that the gradients
            // summed over ranks (and, with synchronised batch norm, the gradients crossing ranks
            // inside backward) are the global batch's.
            total = ops.mul_scalar(&total, share)?;
        }
        let grads = ops.backward(&total)?;
        drop((parts, total));
        let mut g = Vec::with_capacity(leaves.len());
        for (leaf, &t) in leaves.iter().zip(&self.store.trainable) {
            g.push(if t { ops.grad(&grads, leaf)? } else { None });
        }
        drop(grads);
        let _no_grad = ops.no_grad();
        if share.is_some() {
            self.sum_gradients(&mut g)?;
        }
        self.optimizer.step(ops, &mut self.store.values, &g, lr)?;
        drop(g);
        for (leaf, &t) in leaves.iter().zip(&self.store.trainable) {
            if t {
                ops.clear_grad(leaf)?;
            }
        }
        for (i, t) in buffers {
            self.store.values[i] = t;
        }
        if share.is_some() && !self.sync_batch_norm {
            self.broadcast_buffers()?;
        }
        Ok(losses)
    }

    fn losses(&mut self, batch: &HostBatch) -> Result<StepLosses, ExecError> {
        let ops = self.ops.as_ref();
        let _no_grad = ops.no_grad();
        // A training-mode forward may update running statistics in place: keep them.
        let saved: Vec<(usize, Tensor)> = self
            .store
            .buffers()
            .map(|i| Ok((i, ops.deep_copy(&self.store.values[i])?)))
            .collect::<Result<_, ExecError>>()?;
        let result =
            self.train_forward(batch, &self.store.values, false).and_then(|(parts, _)| self.step_losses(&parts, None));
        for (i, t) in saved {
            self.store.values[i] = t;
        }
        result
    }

    fn infer(&mut self, batch: &HostBatch, requests: &[Request]) -> Result<Vec<HostTensor>, ExecError> {
        let ops = self.ops.as_ref();
        let _no_grad = ops.no_grad();
        let step = |n: &str| self.plan.step(n).ok_or_else(|| ExecError::Internal(format!("unknown node `{n}`")));
        let mut wanted = vec![];
        for r in requests {
            for n in r.nodes() {
                wanted.push(step(n)?);
            }
        }
        let mut cx =
            Cx::new(ops, &self.store.values, false, None, &self.log_prior).with_calibrations(&self.calibrations);
        let values = self.run(&mut cx, self.images(batch)?, &self.plan.needed(&wanted))?;
        let value = |n: &str| -> Result<Value, ExecError> {
            values[step(n)?].clone().ok_or_else(|| ExecError::Internal(format!("node `{n}` was not computed")))
        };
        let region = match &batch.region {
            Some(r) if requests.iter().any(|r| matches!(r, Request::ClassSums { .. })) => {
                let [n, _, h, w] = batch.shape;
                Some(ops.upload(r, &[n, 1, h, w])?)
            }
            _ => None,
        };
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            let v = match r {
                Request::ClassSums { .. } => Value::Pems(vec![]),
                _ => value(r.nodes()[0])?,
            };
            out.push(match (r, v) {
                (Request::Output(_), Value::Pems(v)) => {
                    let ts: Vec<Tensor> = v.iter().map(|h| h.tensor().cloned()).collect::<Result<_, _>>()?;
                    host(ops, &ops.stack(&ts, 0)?)?
                }
                (Request::Output(_), v) => host(ops, v.tensor()?)?,
                (Request::Argmax(_), v @ (Value::Vec(_) | Value::Map(_))) => host(ops, &ops.argmax(v.tensor()?, 1)?)?,
                (Request::SpatialMean(_), Value::Pems(v)) => {
                    let mut means = vec![];
                    for h in v {
                        means.push(match h {
                            Value::Map(t) => ops.mean_dims(&ops.float32(&t)?, &[2, 3], false)?,
                            other => ops.float32(&other.flat(ops)?)?,
                        });
                    }
                    host(ops, &ops.stack(&means, 0)?)?
                }
                (Request::ClassSums { values, weights }, _) => {
                    let pems = values.as_deref().map(|n| value(n)?.pems()).transpose()?;
                    let weights = weights.as_deref().map(value).transpose()?;
                    host(ops, &class_sums(ops, pems.as_deref(), weights.as_ref(), region.as_ref())?)?
                }
                (r, _) => return Err(ExecError::Internal(format!("cannot answer {r:?} for this node"))),
            });
        }
        Ok(out)
    }

    fn set_calibration(&mut self, node: &str, vector: Option<&HostTensor>, scale: f64) -> Result<(), ExecError> {
        let i = self.plan.step(node).ok_or_else(|| ExecError::Internal(format!("unknown node `{node}`")))?;
        let vector = vector.map(|v| self.ops.upload(&v.data, &v.shape)).transpose()?;
        self.calibrations[i] = Some(Calibration { vector, scale });
        Ok(())
    }

    fn export(&self) -> Result<Vec<NamedTensor>, ExecError> {
        self.store.export(self.ops.as_ref())
    }

    fn import(&mut self, tensors: &[NamedTensor]) -> Result<(), ExecError> {
        self.store.import(self.ops.as_ref(), tensors)?;
        if self.channels_last {
            to_channels_last(self.ops.as_ref(), &mut self.store)?;
        }
        Ok(())
    }

    fn export_optimizer(&self) -> Result<Vec<NamedTensor>, ExecError> {
        self.optimizer.export(self.ops.as_ref(), &self.store.specs)
    }

    fn import_optimizer(&mut self, tensors: &[NamedTensor]) -> Result<(), ExecError> {
        self.optimizer.import(self.ops.as_ref(), &self.store, tensors)
    }

    fn join(&mut self, world: &World, pipeline_hash: &str) -> Result<(), ExecError> {
        self.join_run(world, pipeline_hash)
    }

    fn barrier(&mut self, tag: &str, timeout: std::time::Duration) -> Result<(), ExecError> {
        self.wait_for_ranks(tag, timeout)
    }

    fn agree(&mut self, values: &[f64]) -> Result<Vec<f64>, ExecError> {
        self.sum_over_ranks(values, "the step agreement")
    }

    fn eval_shard(&self) -> (usize, usize) {
        self.world.as_ref().map_or((0, 1), |w| (w.rank, w.size))
    }

    fn all_gather(
        &mut self,
        tag: &str,
        words: &[u64],
        timeout: std::time::Duration,
    ) -> Result<Vec<Vec<u64>>, ExecError> {
        self.gathers += 1;
        self.gather_over_ranks(&format!("{}/{tag}", self.gathers), words, timeout)
    }
}
