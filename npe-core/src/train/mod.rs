//! The training loop: epochs of steps at the schedule's learning rate, NaN detection, progress,
//! evaluation, `metrics.jsonl`, atomic checkpoints, resume and interruption, `summary.json`.
//! Backends only provide [`Executor`] steps.

pub mod calibrations;
mod evaluate;
pub mod fingerprint;
mod progress;
mod run;
pub mod schedule;
mod shard;
mod writer;

pub use evaluate::{calibrated_nodes, class_groups, evaluate};
pub use progress::ProgressMode;
pub use schedule::Schedule;

use crate::backend::{Backend, Device, ExecError, Executor, StepLosses};
use crate::checkpoint::{self, Checkpoint, CheckpointError, Position};
use crate::data::{self, DataError, Dataset, Loader, SplitKind};
use crate::dist::World;
use crate::ir::Ir;
use crate::model::{NamedTensor, ParamSpec};
use crate::nodes::{Accuracy, GroupsSpec};
use crate::registry::Registry;
use crate::report::{DataReport, EvalReport};
use crate::rng::Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The backend failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Writing reports failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// The loss became NaN or infinite.
    #[error(
        "the training loss is not finite at epoch {epoch}, step {step} ({parts})\n  hint: lower `train.optimizer.lr` (e.g. --set train.optimizer.lr=0.01), add warm-up, or check the data normalisation; {last}"
    )]
    NonFinite {
        /// Epoch (1-based).
        epoch: usize,
        /// Global step.
        step: u64,
        /// Loss parts.
        parts: String,
        /// Where the last good checkpoint is.
        last: String,
    },
    /// Stopped on request (Ctrl-C or a step limit); a checkpoint was written.
    #[error("interrupted at epoch {epoch}, batch {batch}; checkpoint {}\n  hint: continue with the same command plus --resume", .checkpoint.display())]
    Interrupted {
        /// Epoch (1-based) being trained.
        epoch: usize,
        /// Next batch.
        batch: usize,
        /// Checkpoint written.
        checkpoint: PathBuf,
    },
    /// A resume request that cannot be honoured.
    #[error("{0}")]
    Resume(String),
    /// The model's weights stopped being finite; no checkpoint of it was written.
    #[error(
        "the model diverged: tensor `{tensor}` holds {what}, so no checkpoint of it was written\n  hint: lower `train.optimizer.lr` or add warm-up; {last}"
    )]
    Diverged {
        /// The first diverged tensor.
        tensor: String,
        /// What it holds.
        what: String,
        /// Where the last good checkpoint is.
        last: String,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io(crate::error::IoError::new(path, source))
}

/// Settings of a training run that are not part of the pipeline.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Output folder.
    pub out: PathBuf,
    /// Continue from the newest checkpoint in `out/checkpoints`.
    pub resume: bool,
    /// Progress display.
    pub progress: ProgressMode,
    /// Set to stop after the current step, writing a checkpoint (Ctrl-C).
    pub stop: Option<Arc<AtomicBool>>,
    /// Stop after this many optimisation steps in total, writing a checkpoint (tests, time limits).
    pub stop_after_steps: Option<u64>,
    /// With `resume`: if the newest checkpoint is damaged, continue from the newest good one.
    pub fallback: bool,
}

/// Whether `out` may receive a run: a fresh run needs a folder without checkpoints. Checked
/// before anything is written into it.
pub fn check_out(out: &Path, resume: bool) -> Result<(), TrainError> {
    let ck_dir = out.join("checkpoints");
    if !resume && !checkpoint::list(&ck_dir).is_empty() {
        return Err(TrainError::Resume(format!(
            "{} already holds checkpoints of an earlier run\n  hint: add --resume to continue it, or choose another --out",
            ck_dir.display()
        )));
    }
    Ok(())
}

/// A model ready to train or evaluate: data, loaders, executor.
pub struct Session {
    /// The pipeline.
    pub ir: Ir,
    /// The data.
    pub data: Dataset,
    /// The model on its device.
    pub exec: Box<dyn Executor>,
    /// Parameter layout.
    pub params: Vec<ParamSpec>,
    /// Backend name.
    pub backend: String,
    train_loader: Loader,
    test_loader: Loader,
    prior_loader: Option<Loader>,
    world: Option<World>,
    /// What the model trains on (JSON of [`fingerprint::TrainedOn`]), written into checkpoints.
    trained_on: Option<String>,
}

/// How long the other ranks wait for rank 0's evaluation and final reports.
const EVAL_WAIT: Duration = Duration::from_secs(4 * 3600);

/// Groups of the pipeline's first accuracy evaluator (default: by count 100/20).
pub fn primary_groups(ir: &Ir) -> GroupsSpec {
    ir.nodes_of::<Accuracy>().map(|(_, a)| a.groups.clone()).next().unwrap_or_default()
}

impl Session {
    /// Load the data, lay out and initialise the parameters, and build the executor.
    pub fn new(ir: Ir, registry: &Registry, backend: &dyn Backend, device: Device) -> Result<Session, TrainError> {
        let data = data::load(&ir.data_spec, ir.seed)?;
        data.check_classes(ir.num_classes(), &data.name)?;
        Self::with_data(ir, data, registry, backend, device)
    }

    /// Like [`Session::new`] with data already loaded.
    pub fn with_data(
        ir: Ir,
        data: Dataset,
        registry: &Registry,
        backend: &dyn Backend,
        device: Device,
    ) -> Result<Session, TrainError> {
        let ctx = crate::model::build_context(&ir, registry, device, data.train_prior());
        let params = ctx.params.clone();
        let exec = crate::exec::build(backend, &ir, &ctx)?;
        let t = &ir.train;
        let train_loader =
            data::loader(&data, &data.train, &ir.data_spec, SplitKind::Train, t.batch_size, t.drop_last, ir.seed)?;
        let test_loader =
            data::loader(&data, &data.test, &ir.data_spec, SplitKind::Eval, ir.eval.batch_size, false, ir.seed)?;
        let wants_prior = evaluate::reads_training_images(&ir);
        let prior_loader = if wants_prior && ir.eval.prior_train_samples > 0 {
            let n = data.train.len().min(ir.eval.prior_train_samples);
            let mut pick = Rng::stream(ir.seed, &[0x9e1]).permutation(data.train.len());
            pick.truncate(n);
            pick.sort_unstable();
            let subset = data.train.subset(&pick);
            Some(data::loader(&data, &subset, &ir.data_spec, SplitKind::Eval, ir.eval.batch_size, false, ir.seed)?)
        } else {
            None
        };
        let backend = backend.name().to_string();
        let trained_on = serde_json::to_string(&fingerprint::TrainedOn::of(&ir)).ok();
        Ok(Session {
            ir,
            data,
            exec,
            params,
            backend,
            train_loader,
            test_loader,
            prior_loader,
            world: None,
            trained_on,
        })
    }

    /// Train as rank `world.rank` of a data-parallel run ([`crate::dist`]): on this rank's part
    /// of every global batch, with gradients summed over the ranks. Rank 0 alone evaluates and
    /// writes metrics, checkpoints, plots and the summary; every rank reads checkpoints to resume.
    pub fn join(&mut self, world: World) {
        self.train_loader = self.train_loader.sharded(world.rank, world.size);
        self.world = Some(world);
    }

    /// Whether this process writes the run's files (a single process, or rank 0).
    fn writes(&self) -> bool {
        self.world.as_ref().is_none_or(|w| w.rank == 0)
    }

    /// Load the parameters of `train.init_from` that this model has (the start of a fresh run;
    /// e.g. post-hoc PEM training from a model trained without PEMs).
    fn apply_init_from(&mut self) -> Result<(), TrainError> {
        let Some(path) = self.ir.train.init_from.clone() else { return Ok(()) };
        let ck = Checkpoint::load(&path)?;
        let known: std::collections::HashSet<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        let usable: Vec<NamedTensor> = ck.params.into_iter().filter(|t| known.contains(t.name.as_str())).collect();
        if usable.is_empty() {
            return Err(TrainError::Resume(format!(
                "`train.init_from`: {} has no parameter of this model",
                path.display()
            )));
        }
        tracing::info!("initialised {} of {} tensors from {}", usable.len(), self.params.len(), path.display());
        self.exec.import(&usable)?;
        Ok(())
    }

    /// Optimisation steps per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        let n = self.train_loader.len();
        self.ir.train.max_steps_per_epoch.map_or(n, |m| m.min(n))
    }

    /// The training loader.
    pub fn train_loader(&self) -> &Loader {
        &self.train_loader
    }

    /// Evaluate the current model.
    pub fn evaluate(&mut self) -> Result<EvalReport, TrainError> {
        evaluate(&self.ir, &self.data, self.exec.as_mut(), &self.test_loader, self.prior_loader.as_ref())
    }

    fn checkpoint(&self, position: Position) -> Result<Checkpoint, TrainError> {
        Ok(Checkpoint {
            pipeline: self.ir.name.clone(),
            fingerprint: checkpoint::fingerprint(&self.params),
            backend: self.backend.clone(),
            position,
            params: self.exec.export()?,
            optimizer: self.exec.export_optimizer()?,
            seed: Some(self.ir.seed),
            epoch_losses: None,
            trained_on: self.trained_on.clone(),
        })
    }

    /// Write a checkpoint; a model that is no longer finite is reported as divergence, naming
    /// the last checkpoint that was written.
    fn save_checkpoint(&self, ck: Checkpoint, path: &Path, last: Option<&PathBuf>) -> Result<(), TrainError> {
        match ck.save(path) {
            Err(CheckpointError::NonFinite { tensor, what, .. }) => Err(TrainError::Diverged {
                tensor,
                what,
                last: last.map_or("no checkpoint was written yet".into(), |p| {
                    format!("the last finite checkpoint is {}", p.display())
                }),
            }),
            other => Ok(other?),
        }
    }

    /// The newest checkpoint that loads and fits this run, for `--resume`. A damaged newest file
    /// is an error naming the newest good one, unless `fallback` asks to continue from it.
    fn resume_from(&mut self, existing: &[PathBuf], fallback: bool) -> Result<Checkpoint, TrainError> {
        let mut first_err: Option<TrainError> = None;
        for path in existing.iter().rev() {
            match self.load_for_resume(path) {
                Ok(ck) if first_err.is_none() || fallback => {
                    if let Some(e) = first_err {
                        tracing::warn!("{e}\n  continuing from {} (--fallback)", path.display());
                    }
                    return Ok(ck);
                }
                Ok(_) => {
                    return Err(TrainError::Resume(format!(
                        "{}\n  the newest good checkpoint is {}\n  hint: add --fallback to continue from it (or move the damaged file away)",
                        first_err.expect("set"),
                        path.display()
                    )));
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| TrainError::Resume("no checkpoint to resume".into())))
    }

    /// Load a checkpoint for resuming: model, seed and optimiser state must all fit.
    fn load_for_resume(&mut self, path: &Path) -> Result<Checkpoint, TrainError> {
        let ck = Checkpoint::load(path)?;
        if let Some(seed) = ck.seed.filter(|&s| s != self.ir.seed) {
            return Err(TrainError::Resume(format!(
                "{} was written by a run with seed {seed}; this run has seed {}",
                path.display(),
                self.ir.seed
            )));
        }
        let uses_state = self.ir.train.optimizer.momentum != 0.0
            || self.ir.train.optimizer.kind != crate::spec::OptimizerKind::Sgd
            || self.ir.train.optimizer.param_groups.iter().any(|g| g.kind.is_some());
        if uses_state && ck.position.global_step > 0 && ck.optimizer.is_empty() {
            return Err(TrainError::Resume(format!(
                "{} has no optimiser state (momentum), which this run needs to continue exactly",
                path.display()
            )));
        }
        self.check_fits(path, &ck)?;
        self.exec.import(&ck.params)?;
        self.exec.import_optimizer(&ck.optimizer)?;
        Ok(ck)
    }

    /// Error unless `ck` holds every parameter of this model with its shape.
    fn check_fits(&self, path: &Path, ck: &Checkpoint) -> Result<(), TrainError> {
        if ck.fingerprint != checkpoint::fingerprint(&self.params) {
            return Err(TrainError::Resume(format!(
                "{} was written for a different model (pipeline `{}`); its parameters do not match `{}`",
                path.display(),
                ck.pipeline,
                self.ir.name
            )));
        }
        let have: std::collections::HashSet<&str> = ck.params.iter().map(|t| t.name.as_str()).collect();
        let missing: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).filter(|n| !have.contains(n)).collect();
        if !missing.is_empty() {
            return Err(TrainError::Resume(format!(
                "{} lacks parameters of this model: {}",
                path.display(),
                missing.join(", ")
            )));
        }
        Ok(())
    }

    /// Load parameters (and buffers) from a checkpoint or model file, checking it fits.
    pub fn load_params(&mut self, path: &Path) -> Result<Checkpoint, TrainError> {
        let ck = Checkpoint::load(path)?;
        self.check_fits(path, &ck)?;
        self.exec.import(&ck.params)?;
        Ok(ck)
    }

    /// Data facts for reports.
    pub fn data_report(&self) -> DataReport {
        let groups = class_groups(&primary_groups(&self.ir), &self.data.train_counts);
        DataReport {
            name: self.data.name.clone(),
            origin: self.data.origin.clone(),
            provenance: self.data.provenance,
            classes: self.data.classes.clone(),
            train_counts: self.data.train_counts.clone(),
            train_images: self.data.train.len(),
            test_images: self.data.test.len(),
            groups: groups.iter().map(|&g| ["head", "medium", "tail"][g].to_string()).collect(),
            skipped_files: self.data.skipped_files.iter().map(|p| p.display().to_string()).collect(),
        }
    }
    /// Whether to stop after this step (Ctrl-C, `--stop-after-steps`): in a data-parallel run,
    /// when any rank was asked, so that every rank stops at the same step.
    fn should_stop(&mut self, opts: &TrainOptions, global_step: u64) -> Result<bool, TrainError> {
        let asked = opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
            || opts.stop_after_steps.is_some_and(|n| global_step >= n);
        if self.world.is_none() {
            return Ok(asked);
        }
        Ok(self.exec.agree(&[asked as u8 as f64])?[0] > 0.0)
    }
}

/// A digest of what a run computes: the resolved pipeline (after overrides) and the model's
/// parameter layout. Ranks that differ would average unrelated gradients.
fn pipeline_hash(ir: &Ir, params: &[ParamSpec]) -> String {
    let sections = serde_json::to_string(&(&ir.name, ir.seed, &ir.data_spec, &ir.train, &ir.eval)).unwrap_or_default();
    let nodes: Vec<String> = ir.order.iter().map(|&i| format!("{}={:?}", ir.graph[i].name, ir.graph[i].body)).collect();
    let text = format!("{sections}\n{}\n{}", crate::checkpoint::fingerprint(params), nodes.join("\n"));
    // FNV-1a, 64 bits.
    let h = text.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    format!("{h:016x}")
}

fn fmt_parts(l: &StepLosses) -> String {
    let p: Vec<String> = l.parts.iter().map(|(n, v)| format!("{n} = {v}")).collect();
    p.join(", ")
}

fn log_epoch(done: usize, epochs: usize, loss: &BTreeMap<String, f64>, eval: Option<&EvalReport>, ips: f64) {
    let parts: Vec<String> = loss.iter().filter(|(k, _)| *k != "total").map(|(k, v)| format!("{k} {v:.4}")).collect();
    let mut line = format!(
        "epoch {done}/{epochs}: loss {:.4} ({}) {ips:.0} img/s",
        loss.get("total").copied().unwrap_or(f64::NAN),
        parts.join(", ")
    );
    if let Some(e) = eval {
        for outputs in e.accuracy.values() {
            let accs: Vec<String> =
                outputs.iter().map(|(n, a)| format!("{n} {:.2}", 100.0 * a.mean_per_class)).collect();
            line.push_str(&format!(" | mean per-class acc: {}", accs.join(", ")));
        }
        for outputs in e.segmentation.values() {
            let m: Vec<String> = outputs.iter().map(|(n, s)| format!("{n} {:.2}", 100.0 * s.miou)).collect();
            line.push_str(&format!(" | mIoU: {}", m.join(", ")));
        }
        for (n, p) in &e.prior {
            let f = p.train.as_ref().unwrap_or(&p.test);
            line.push_str(&format!(" | {n}: r {:.3} slope {:.3}", f.r, f.slope));
        }
    }
    tracing::info!("{line}");
}
