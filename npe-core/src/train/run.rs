//! [`Session::train`] in its steps: prepare (resume or start, join the ranks), each epoch's
//! steps, the end of each epoch (evaluation, record, checkpoint, barrier), and the finish
//! (final evaluation, model, calibrations, summary). What rank 0 writes goes through its
//! [`RunWriter`]; the other ranks have none.

use super::writer::{RunWriter, prune};
use super::{
    EVAL_WAIT, Session, TrainError, TrainOptions, calibrations, fmt_parts, log_epoch, pipeline_hash, progress,
};
use crate::checkpoint::{self, Position};
use crate::report::{self, EpochRecord, EvalReport, PhaseSeconds, Summary, plot};
use crate::train::Schedule;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Loss sums of an epoch's steps so far and their count.
type LossSums = (BTreeMap<String, f64>, usize);

/// Where a run stands, carried from epoch to epoch.
struct RunState {
    pos: Position,
    ck_dir: PathBuf,
    /// The loss sums of the epoch a mid-epoch checkpoint was taken in.
    resumed_losses: Option<LossSums>,
    last_ck: Option<PathBuf>,
    phases: PhaseSeconds,
    train_seconds: f64,
    images: u64,
    last_loss: BTreeMap<String, f64>,
    last_eval: Option<EvalReport>,
}

impl RunState {
    fn add_eval(&mut self, e: &EvalReport) {
        self.phases.eval_test += e.test_pass_seconds;
        self.phases.eval_train_images += e.train_pass_seconds;
    }
}

/// How a run starts.
enum Start {
    /// Train from this state.
    Train(RunState),
    /// Resumed after its last epoch with its summary written: nothing to do.
    Finished(Summary),
}

impl Session {
    /// Train for `train.epochs` (resuming from the newest checkpoint with `opts.resume`),
    /// evaluating every `eval.every_epochs`, checkpointing every `train.checkpoint.every_epochs`;
    /// writes `metrics.jsonl`, checkpoints, plots and `summary.json` into `opts.out` (rank 0).
    pub fn train(&mut self, opts: &TrainOptions) -> Result<Summary, TrainError> {
        let started = Instant::now();
        let mut writer = if self.writes() { Some(RunWriter::open(&opts.out, opts.resume)?) } else { None };
        let mut st = match self.prepare(opts)? {
            Start::Train(st) => st,
            Start::Finished(summary) => return Ok(summary),
        };
        let epochs = self.ir.train.epochs;
        let spe = self.steps_per_epoch();
        let schedule = Schedule::new(self.ir.train.optimizer.lr, &self.ir.train.schedule, spe, epochs);
        if let Some(w) = &mut writer {
            w.start(st.pos.epoch, self.ir.train.tensorboard)?;
            self.log_start(spe);
        }
        let mut progress = progress::Progress::new(opts.progress, epochs);
        for epoch in st.pos.epoch..epochs {
            let start = if epoch == st.pos.epoch { st.pos.batch } else { 0 };
            progress.start_epoch(epoch, spe, start);
            let t0 = Instant::now();
            let (sums, n_steps, lr) =
                self.steps(epoch, start, &schedule, opts, &mut progress, &mut st, writer.is_some())?;
            let seconds = t0.elapsed().as_secs_f64();
            st.train_seconds += seconds;
            let images_per_second = progress.images_per_second();
            progress.finish_epoch();
            let record = EpochRecord {
                epoch: epoch + 1,
                global_step: st.pos.global_step,
                lr,
                seconds,
                images_per_second,
                train_loss: sums.iter().map(|(k, v)| (k.clone(), v / n_steps.max(1) as f64)).collect(),
                eval: None,
            };
            self.end_epoch(record, opts, &mut st, writer.as_ref())?;
        }
        self.finish(opts, st, writer.as_ref(), started)
    }

    /// Where the run starts: the newest checkpoint's position with `--resume` (or the finished
    /// run's summary), else the beginning after `train.init_from`; then the ranks join.
    fn prepare(&mut self, opts: &TrainOptions) -> Result<Start, TrainError> {
        let out = &opts.out;
        let ck_dir = out.join("checkpoints");
        let existing = checkpoint::list(&ck_dir);
        let epochs = self.ir.train.epochs;
        let mut pos = Position { epoch: 0, batch: 0, global_step: 0 };
        let mut resumed_losses = None;
        if opts.resume && !existing.is_empty() {
            let ck = self.resume_from(&existing, opts.fallback)?;
            pos = ck.position.clone();
            resumed_losses = ck.epoch_losses.clone();
            if pos.epoch >= epochs && pos.batch == 0 {
                let done = std::fs::read(out.join("summary.json"))
                    .ok()
                    .filter(|b| report::summary::summary_matches_checksum(out, b) != Some(false))
                    .and_then(|b| serde_json::from_slice::<Summary>(&b).ok());
                if let Some(summary) = done {
                    tracing::info!("{} finished all {epochs} epochs already; nothing to resume", out.display());
                    return Ok(Start::Finished(summary));
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
        Ok(Start::Train(RunState {
            pos,
            ck_dir,
            resumed_losses,
            last_ck: existing.last().cloned(),
            phases: PhaseSeconds::default(),
            train_seconds: 0.0,
            images: 0,
            last_loss: BTreeMap::new(),
            last_eval: None,
        }))
    }

    fn log_start(&self, spe: usize) {
        let world = self.world.as_ref().map_or(String::new(), |w| format!(" on {} ranks", w.size));
        tracing::info!(
            "training `{}` on {} ({} train / {} test images, {} classes) with {}{world}; {} epochs × {} steps",
            self.ir.name,
            self.data.name,
            self.data.train.len(),
            self.data.test.len(),
            self.data.num_classes(),
            self.exec.describe(),
            self.ir.train.epochs,
            spe
        );
    }

    /// The steps of `epoch` from batch `start`: the epoch's loss sums, its step count and the
    /// last learning rate. A non-finite loss ends the run with an error; so does a stop asked
    /// for before the epoch's end, after a mid-epoch checkpoint (rank 0 writes it).
    #[allow(clippy::too_many_arguments)]
    fn steps(
        &mut self,
        epoch: usize,
        start: usize,
        schedule: &Schedule,
        opts: &TrainOptions,
        progress: &mut progress::Progress,
        st: &mut RunState,
        writes: bool,
    ) -> Result<(BTreeMap<String, f64>, usize, f64), TrainError> {
        let spe = self.steps_per_epoch();
        let (mut sums, mut n_steps) =
            if epoch == st.pos.epoch { st.resumed_losses.take().unwrap_or_default() } else { Default::default() };
        let mut lr = schedule.lr(st.pos.global_step as usize);
        let mut it = self.train_loader.iter(epoch as u64, start);
        for b in start..spe {
            let Some(batch) = it.next() else { break };
            let batch = batch?;
            lr = schedule.lr(st.pos.global_step as usize);
            let losses = self.exec.train_step(&batch, lr)?;
            if !losses.total.is_finite() {
                progress.finish_epoch();
                let last = st.last_ck.as_ref().map_or("no checkpoint was written yet".to_string(), |p| {
                    format!("the last checkpoint is {}", p.display())
                });
                return Err(TrainError::NonFinite {
                    epoch: epoch + 1,
                    step: st.pos.global_step,
                    parts: fmt_parts(&losses),
                    last,
                });
            }
            *sums.entry("total".into()).or_default() += losses.total;
            for (k, v) in &losses.parts {
                *sums.entry(k.clone()).or_default() += v;
            }
            n_steps += 1;
            let seen = batch.global_len.max(batch.len());
            st.images += seen as u64;
            st.pos.global_step += 1;
            st.pos.batch = b + 1;
            progress.step(b, &losses, seen, lr);
            if self.should_stop(opts, st.pos.global_step)? && b + 1 < spe {
                drop(it);
                progress.finish_epoch();
                let here = Position { epoch, batch: b + 1, global_step: st.pos.global_step };
                let path = st.ck_dir.join(checkpoint::file_name(&here));
                if writes {
                    let mut ck = self.checkpoint(here)?;
                    ck.epoch_losses = Some((sums.clone(), n_steps));
                    self.save_checkpoint(ck, &path, st.last_ck.as_ref())?;
                }
                self.exec.barrier(&format!("stop/{}", st.pos.global_step), EVAL_WAIT)?;
                return Err(TrainError::Interrupted { epoch: epoch + 1, batch: b + 1, checkpoint: path });
            }
        }
        Ok((sums, n_steps, lr))
    }

    /// After an epoch's steps: its evaluation when due (every rank its shard), its record, its checkpoint
    /// when due, the ranks' barrier, and a stop asked for between epochs.
    fn end_epoch(
        &mut self,
        mut record: EpochRecord,
        opts: &TrainOptions,
        st: &mut RunState,
        writer: Option<&RunWriter>,
    ) -> Result<(), TrainError> {
        let (done, epochs) = (record.epoch, self.ir.train.epochs);
        // Every rank evaluates its shard of the batches; rank 0 records the merged report.
        if done % self.ir.eval.every_epochs == 0 || done == epochs {
            let e = self.evaluate()?;
            st.add_eval(&e);
            record.eval = Some(e);
        }
        if let Some(w) = writer {
            log_epoch(done, epochs, &record.train_loss, record.eval.as_ref(), record.images_per_second);
            w.record(&record)?;
        }
        st.pos = Position { epoch: done, batch: 0, global_step: st.pos.global_step };
        if done % self.ir.train.checkpoint.every_epochs == 0 || done == epochs {
            let path = st.ck_dir.join(checkpoint::file_name(&st.pos));
            if writer.is_some() {
                let t = Instant::now();
                self.save_checkpoint(self.checkpoint(st.pos.clone())?, &path, st.last_ck.as_ref())?;
                prune(&st.ck_dir, self.ir.train.checkpoint.keep_last, &path);
                st.phases.checkpoint += t.elapsed().as_secs_f64();
            }
            st.last_ck = Some(path);
        }
        // The other ranks wait here for rank 0's evaluation and checkpoint.
        self.exec.barrier(&format!("epoch/{done}"), EVAL_WAIT)?;
        st.last_loss = record.train_loss;
        if record.eval.is_some() {
            st.last_eval = record.eval;
        }
        if self.should_stop(opts, st.pos.global_step)? && done < epochs {
            let path = st.ck_dir.join(checkpoint::file_name(&st.pos));
            if st.last_ck.as_ref() != Some(&path) && writer.is_some() {
                self.save_checkpoint(self.checkpoint(st.pos.clone())?, &path, st.last_ck.as_ref())?;
            }
            self.exec.barrier(&format!("stop/{}", st.pos.global_step), EVAL_WAIT)?;
            return Err(TrainError::Interrupted { epoch: done + 1, batch: 0, checkpoint: path });
        }
        Ok(())
    }

    /// After the last epoch: rank 0's final files ([`Session::final_files`]) and everyone's
    /// summary, which rank 0 writes.
    fn finish(
        &mut self,
        opts: &TrainOptions,
        mut st: RunState,
        writer: Option<&RunWriter>,
        started: Instant,
    ) -> Result<Summary, TrainError> {
        let out = &opts.out;
        let model_path = out.join("model.safetensors");
        // A run resumed after its last epoch has no final evaluation yet: every rank takes its
        // shard of it.
        if st.last_eval.is_none() {
            let e = self.evaluate()?;
            st.add_eval(&e);
            st.last_eval = Some(e);
        }
        let eval = match writer {
            Some(w) => self.final_files(out, w, &mut st)?,
            None => {
                // Rank 0 evaluates and writes the reports; the others finish with it.
                self.exec.barrier("done", EVAL_WAIT)?;
                EvalReport::default()
            }
        };
        let summary = Summary {
            pipeline: self.ir.name.clone(),
            backend: self.exec.describe(),
            data: self.data_report(),
            epochs: self.ir.train.epochs,
            steps: st.pos.global_step,
            train_seconds: st.train_seconds,
            images_per_second: st.images as f64 / st.train_seconds.max(1e-9),
            final_train_loss: st.last_loss,
            eval,
            model: model_path.display().to_string(),
            phases: PhaseSeconds { wall: started.elapsed().as_secs_f64(), train: st.train_seconds, ..st.phases },
        };
        if writer.is_none() {
            return Ok(summary);
        }
        tracing::info!("time {}", summary.phases.describe());
        report::summary::write_summary(out, &summary)?;
        self.exec.barrier("done", EVAL_WAIT)?;
        Ok(summary)
    }

    /// Rank 0 after the last epoch: the final evaluation (made by every rank in `finish`),
    /// plots, the model and its calibrations. A run resumed after its last epoch trained
    /// nothing in this process: its totals come from its records.
    fn final_files(
        &mut self,
        out: &std::path::Path,
        w: &RunWriter,
        st: &mut RunState,
    ) -> Result<EvalReport, TrainError> {
        let eval = st.last_eval.take().unwrap_or_default();
        let records = w.records();
        plot::write_all(out, &records, &eval, &self.data.classes, &self.data.train_counts);
        if st.images == 0 && !records.is_empty() {
            st.last_loss = records.last().map(|r| r.train_loss.clone()).unwrap_or_default();
            st.train_seconds = records.iter().map(|r| r.seconds).sum();
            st.images = (records.iter().map(|r| r.seconds * r.images_per_second).sum::<f64>()).round() as u64;
        }
        let t = Instant::now();
        self.checkpoint(st.pos.clone())?.save_model(&out.join("model.safetensors"))?;
        // What `npe predict` needs besides the weights, from this final evaluation.
        let images = self.data.train.len().min(self.ir.eval.prior_train_samples);
        let epochs = self.ir.train.epochs;
        let provenance = format!("final evaluation of {} after epoch {epochs}", out.display());
        calibrations::Calibrations::of(&eval, &self.data.classes, &self.data.train_counts, images, provenance)
            .write(out)?;
        st.phases.checkpoint += t.elapsed().as_secs_f64();
        Ok(eval)
    }
}
