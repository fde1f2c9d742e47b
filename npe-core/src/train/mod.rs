//! The training loop: epochs of steps at the schedule's learning rate, NaN detection, progress,
//! evaluation, `metrics.jsonl`, atomic checkpoints, resume and interruption, `summary.json`.
//! Backends only provide [`Executor`] steps.

pub mod calibrations;
pub mod compare;
mod evaluate;
pub mod fingerprint;
pub mod metrics;
pub mod plot;
mod progress;
pub mod report;
pub mod schedule;
pub mod study;
pub mod tensorboard;

pub use evaluate::{calibrated_nodes, class_groups, evaluate};
pub use progress::ProgressMode;
pub use report::{
    CalibrationReport, DataReport, EpochRecord, EvalOutput, EvalReport, PhaseSeconds, PriorReport, Summary,
};
pub use schedule::Schedule;

use crate::backend::{Backend, BuildContext, Device, ExecError, Executor, StepLosses};
use crate::checkpoint::{self, Checkpoint, CheckpointError, Position};
use crate::data::{self, DataError, Dataset, Loader, SplitKind};
use crate::dist::World;
use crate::ir::Ir;
use crate::model::{NamedTensor, ParamSpec, initial_values, layout};
use crate::nodes::{Accuracy, GroupsSpec};
use crate::registry::Registry;
use crate::rng::Rng;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
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
    move |source| TrainError::Io { path: path.to_path_buf(), source }
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
        let params = layout(&ir, registry);
        let initial = initial_values(&params, ir.seed);
        let ctx = BuildContext {
            device,
            threads: ir.train.threads,
            params: params.clone(),
            initial,
            optimizer: ir.train.optimizer.clone(),
            frozen: ir.train.freeze.iter().cloned().collect(),
            class_prior: data.train_prior(),
            ignore_index: data.ignore_index as i64,
        };
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

    /// Train as the pipeline says, writing reports and checkpoints under `opts.out`.
    pub fn train(&mut self, opts: &TrainOptions) -> Result<Summary, TrainError> {
        let started = Instant::now();
        let mut phases = PhaseSeconds::default();
        let out = &opts.out;
        let ck_dir = out.join("checkpoints");
        let writes = self.writes();
        if writes {
            std::fs::create_dir_all(&ck_dir).map_err(io_err(&ck_dir))?;
            check_out(out, opts.resume)?;
            // What a killed run was writing when it died.
            checkpoint::remove_stale_temporaries(&ck_dir);
            checkpoint::remove_stale_temporaries(out);
        }
        let existing = checkpoint::list(&ck_dir);
        let epochs = self.ir.train.epochs;
        let mut pos = Position { epoch: 0, batch: 0, global_step: 0 };
        let mut resumed_losses = None;
        if opts.resume && !existing.is_empty() {
            let ck = self.resume_from(&existing, opts.fallback)?;
            pos = ck.position.clone();
            resumed_losses = ck.epoch_losses.clone();
            let summary_path = out.join("summary.json");
            if pos.epoch >= epochs && pos.batch == 0 {
                let done = std::fs::read(&summary_path)
                    .ok()
                    .filter(|b| report::summary_matches_checksum(out, b) != Some(false))
                    .and_then(|b| serde_json::from_slice::<Summary>(&b).ok());
                if let Some(summary) = done {
                    tracing::info!("{} finished all {epochs} epochs already; nothing to resume", out.display());
                    return Ok(summary);
                }
            }
            tracing::info!(
                "resuming from checkpoint at epoch {}, batch {}, step {}",
                pos.epoch + 1,
                pos.batch,
                pos.global_step
            );
        } else {
            if opts.resume {
                tracing::info!("--resume: no checkpoint in {}, starting from scratch", ck_dir.display());
            }
            self.apply_init_from()?;
        }
        if let Some(world) = self.world.clone() {
            let hash = pipeline_hash(&self.ir, &self.params);
            self.exec.join(&world, &hash)?;
            tracing::debug!(
                "rank {} of {} joined the run at {}:{}",
                world.rank,
                world.size,
                world.master_addr,
                world.master_port
            );
        }
        let spe = self.steps_per_epoch();
        let schedule = Schedule::new(self.ir.train.optimizer.lr, &self.ir.train.schedule, spe, epochs);
        let metrics_path = out.join("metrics.jsonl");
        let tensorboard = if self.ir.train.tensorboard && writes {
            let dir = out.join("tensorboard");
            Some(tensorboard::EventWriter::create(&dir).map_err(io_err(&dir))?)
        } else {
            None
        };
        if writes {
            keep_records_up_to(&metrics_path, pos.epoch)?;
        }
        let mut progress = progress::Progress::new(opts.progress, epochs);
        let mut train_seconds = 0.0;
        let mut images = 0u64;
        let mut last_loss = BTreeMap::new();
        let mut last_eval = None;
        let mut last_ck: Option<PathBuf> = existing.last().cloned();
        let world = self.world.as_ref().map_or(String::new(), |w| format!(" on {} ranks", w.size));
        if writes {
            tracing::info!(
                "training `{}` on {} ({} train / {} test images, {} classes) with {}{world}; {} epochs × {} steps",
                self.ir.name,
                self.data.name,
                self.data.train.len(),
                self.data.test.len(),
                self.data.num_classes(),
                self.exec.describe(),
                epochs,
                spe
            );
        }
        for epoch in pos.epoch..epochs {
            let start = if epoch == pos.epoch { pos.batch } else { 0 };
            progress.start_epoch(epoch, spe, start);
            let t0 = Instant::now();
            let (mut sums, mut n_steps): (BTreeMap<String, f64>, usize) =
                if epoch == pos.epoch { resumed_losses.take().unwrap_or_default() } else { Default::default() };
            let mut lr = schedule.lr(pos.global_step as usize);
            let mut it = self.train_loader.iter(epoch as u64, start);
            for b in start..spe {
                let Some(batch) = it.next() else { break };
                let batch = batch?;
                lr = schedule.lr(pos.global_step as usize);
                let losses = self.exec.train_step(&batch, lr)?;
                if !losses.total.is_finite() {
                    progress.finish_epoch();
                    let last = last_ck.as_ref().map_or("no checkpoint was written yet".to_string(), |p| {
                        format!("the last checkpoint is {}", p.display())
                    });
                    return Err(TrainError::NonFinite {
                        epoch: epoch + 1,
                        step: pos.global_step,
                        parts: fmt_parts(&losses),
                        last,
                    });
                }
                *sums.entry("total".into()).or_default() += losses.total;
                for (k, v) in &losses.parts {
                    *sums.entry(k.clone()).or_default() += v;
                }
                n_steps += 1;
                images += batch.global_len.max(batch.len()) as u64;
                pos.global_step += 1;
                pos.batch = b + 1;
                progress.step(b, &losses, batch.global_len.max(batch.len()), lr);
                let stop_now = self.should_stop(opts, pos.global_step)?;
                if stop_now && b + 1 < spe {
                    drop(it);
                    progress.finish_epoch();
                    let here = Position { epoch, batch: b + 1, global_step: pos.global_step };
                    let path = ck_dir.join(checkpoint::file_name(&here));
                    if writes {
                        let mut ck = self.checkpoint(here)?;
                        ck.epoch_losses = Some((sums.clone(), n_steps));
                        self.save_checkpoint(ck, &path, last_ck.as_ref())?;
                    }
                    self.exec.barrier(&format!("stop/{}", pos.global_step), EVAL_WAIT)?;
                    return Err(TrainError::Interrupted { epoch: epoch + 1, batch: b + 1, checkpoint: path });
                }
            }
            let seconds = t0.elapsed().as_secs_f64();
            train_seconds += seconds;
            let ips = progress.images_per_second();
            progress.finish_epoch();
            let mean: BTreeMap<String, f64> =
                sums.iter().map(|(k, v)| (k.clone(), v / n_steps.max(1) as f64)).collect();
            let done = epoch + 1;
            let eval_now = (done % self.ir.eval.every_epochs == 0 || done == epochs) && writes;
            let eval = if eval_now { Some(self.evaluate()?) } else { None };
            if let Some(e) = &eval {
                phases.eval_test += e.test_pass_seconds;
                phases.eval_train_images += e.train_pass_seconds;
            }
            if writes {
                log_epoch(done, epochs, &mean, eval.as_ref(), ips);
            }
            let record = EpochRecord {
                epoch: done,
                global_step: pos.global_step,
                lr,
                seconds,
                images_per_second: ips,
                train_loss: mean.clone(),
                eval: eval.clone(),
            };
            if writes {
                append_record(&metrics_path, &record)?;
            }
            if let Some(tb) = &tensorboard {
                tb.epoch(&record).map_err(io_err(&out.join("tensorboard")))?;
            }
            pos = Position { epoch: done, batch: 0, global_step: pos.global_step };
            if done % self.ir.train.checkpoint.every_epochs == 0 || done == epochs {
                let path = ck_dir.join(checkpoint::file_name(&pos));
                if writes {
                    let t = Instant::now();
                    self.save_checkpoint(self.checkpoint(pos.clone())?, &path, last_ck.as_ref())?;
                    prune(&ck_dir, self.ir.train.checkpoint.keep_last, &path);
                    phases.checkpoint += t.elapsed().as_secs_f64();
                }
                last_ck = Some(path);
            }
            // The other ranks wait here for rank 0's evaluation and checkpoint.
            self.exec.barrier(&format!("epoch/{done}"), EVAL_WAIT)?;
            last_loss = mean;
            if eval.is_some() {
                last_eval = eval;
            }
            let stop_now = self.should_stop(opts, pos.global_step)?;
            if stop_now && done < epochs {
                let path = ck_dir.join(checkpoint::file_name(&pos));
                if last_ck.as_ref() != Some(&path) && writes {
                    self.save_checkpoint(self.checkpoint(pos.clone())?, &path, last_ck.as_ref())?;
                }
                self.exec.barrier(&format!("stop/{}", pos.global_step), EVAL_WAIT)?;
                return Err(TrainError::Interrupted { epoch: done + 1, batch: 0, checkpoint: path });
            }
        }
        let model_path = out.join("model.safetensors");
        let eval = if writes {
            let eval = match last_eval {
                Some(e) => e,
                None => {
                    let e = self.evaluate()?;
                    phases.eval_test += e.test_pass_seconds;
                    phases.eval_train_images += e.train_pass_seconds;
                    e
                }
            };
            let records = read_records(&metrics_path);
            plot::write_all(out, &records, &eval, &self.data.classes, &self.data.train_counts);
            // A run resumed after its last epoch (killed while writing the final files)
            // trained nothing in this process: its totals come from its records.
            if images == 0 && !records.is_empty() {
                last_loss = records.last().map(|r| r.train_loss.clone()).unwrap_or_default();
                train_seconds = records.iter().map(|r| r.seconds).sum();
                images = (records.iter().map(|r| r.seconds * r.images_per_second).sum::<f64>()).round() as u64;
            }
            let t = Instant::now();
            self.checkpoint(pos.clone())?.save_model(&model_path)?;
            // What `npe predict` needs besides the weights, from this final evaluation.
            let images = self.data.train.len().min(self.ir.eval.prior_train_samples);
            let provenance = format!("final evaluation of {} after epoch {epochs}", out.display());
            calibrations::Calibrations::of(&eval, &self.data.classes, &self.data.train_counts, images, provenance)
                .write(out)?;
            phases.checkpoint += t.elapsed().as_secs_f64();
            eval
        } else {
            // Rank 0 evaluates and writes the reports; the others finish with it.
            self.exec.barrier("done", EVAL_WAIT)?;
            EvalReport::default()
        };
        let summary = Summary {
            pipeline: self.ir.name.clone(),
            backend: self.exec.describe(),
            data: self.data_report(),
            epochs,
            steps: pos.global_step,
            train_seconds,
            images_per_second: images as f64 / train_seconds.max(1e-9),
            final_train_loss: last_loss,
            eval,
            model: model_path.display().to_string(),
            phases: PhaseSeconds { wall: started.elapsed().as_secs_f64(), train: train_seconds, ..phases },
        };
        if !writes {
            return Ok(summary);
        }
        tracing::info!("time {}", summary.phases.describe());
        report::write_summary(out, &summary)?;
        self.exec.barrier("done", EVAL_WAIT)?;
        Ok(summary)
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

/// The records of `metrics.jsonl` (for plots), skipping unreadable lines.
fn read_records(path: &Path) -> Vec<EpochRecord> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default()
}

fn append_record(path: &Path, record: &EpochRecord) -> Result<(), TrainError> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io_err(path))?;
    let mut line = serde_json::to_vec(record).expect("records serialize");
    line.push(b'\n');
    f.write_all(&line).map_err(io_err(path))?;
    f.sync_data().map_err(io_err(path))
}

/// Drop `metrics.jsonl` lines of epochs after `epoch` (written after the checkpoint we resume from).
fn keep_records_up_to(path: &Path, epoch: usize) -> Result<(), TrainError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["epoch"].as_u64())
                .is_some_and(|e| e as usize <= epoch)
        })
        .collect();
    let mut s = kept.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    checkpoint::write_atomic(path, s.as_bytes())?;
    Ok(())
}

/// Keep the newest `keep` epoch checkpoints (and never `current`); mid-epoch ones older than
/// `current` go too.
fn prune(dir: &Path, keep: usize, current: &Path) {
    let all = checkpoint::list(dir);
    let n = all.len();
    for (i, p) in all.iter().enumerate() {
        if p != current && i + keep < n {
            let _ = std::fs::remove_file(p);
        }
    }
}
