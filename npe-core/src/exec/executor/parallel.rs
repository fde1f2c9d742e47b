//! The data-parallel side of the executor ([`crate::dist`]): joining a run, gradient sums, rank
//! 0's buffers, barriers and step agreement, and the errors that name the ranks that stopped
//! answering.

use super::GraphExecutor;
use crate::backend::ExecError;
use crate::batch::HostBatch;
use crate::dist::{self, World};
use crate::tensor::{Tensor, TensorError};
use std::time::Duration;

impl GraphExecutor {
    /// The error of a failed collective, naming the ranks that stopped answering.
    pub(super) fn failed(&self, what: &str, e: TensorError) -> ExecError {
        match &self.world {
            Some(w) => ExecError::Collective(dist::diagnose(self.ops.as_ref(), w, what, &e.message)),
            None => e.into(),
        }
    }

    /// This rank's weight in the global batch's mean losses: its share of the images, or for
    /// per-pixel labels its share of the labelled pixels (the losses average over those), so
    /// that the weighted sum over ranks is exactly the global batch's mean.
    pub(super) fn share_of_global_batch(&self, batch: &HostBatch) -> Result<f64, ExecError> {
        if !batch.dense {
            return Ok(batch.share());
        }
        let labelled = batch.labels.iter().filter(|&&l| l >= 0 && l != self.ignore_index).count() as f64;
        let total = self.sum_over_ranks(&[labelled], "the labelled-pixel count")?[0];
        Ok(if total > 0.0 { labelled / total } else { batch.share() })
    }

    /// Data-parallel: sum the gradients over ranks. Each rank back-propagated its share of the
    /// global batch's loss, so the sum is the gradient one process takes on the whole batch.
    pub(super) fn sum_gradients(&self, grads: &mut [Option<Tensor>]) -> Result<(), ExecError> {
        let at: Vec<usize> = (0..grads.len()).filter(|&i| grads[i].is_some()).collect();
        let mut flat: Vec<Tensor> = at.iter().filter_map(|&i| grads[i].take()).collect();
        dist::all_reduce_sum(self.ops.as_ref(), &mut flat).map_err(|e| self.failed("the gradient all-reduce", e))?;
        for (i, g) in at.into_iter().zip(flat) {
            grads[i] = Some(g);
        }
        Ok(())
    }

    /// Data-parallel with per-rank batch norm: every rank takes rank 0's running statistics
    /// (PyTorch DDP's `broadcast_buffers`), so the ranks' models stay one model.
    pub(super) fn broadcast_buffers(&mut self) -> Result<(), ExecError> {
        let ops = self.ops.as_ref();
        let at: Vec<usize> = self.store.buffers().collect();
        if at.is_empty() {
            return Ok(());
        }
        let mut bufs: Vec<Tensor> = at.iter().map(|&i| self.store.values[i].clone()).collect();
        dist::broadcast(ops, &mut bufs).map_err(|e| self.failed("the buffer broadcast", e))?;
        for (i, t) in at.into_iter().zip(bufs) {
            self.store.values[i] = t;
        }
        Ok(())
    }

    /// [`Executor::join`](crate::backend::Executor::join).
    pub(super) fn join_run(&mut self, world: &World, pipeline_hash: &str) -> Result<(), ExecError> {
        let ops = self.ops.as_ref();
        ops.join(world).map_err(|e| ExecError::Collective(join_error(world, &e.message)))?;
        dist::check_same_pipeline(ops, world, pipeline_hash).map_err(|e| ExecError::Collective(e.to_string()))?;
        if world.rank == 0
            && let Some(store) = ops.shared_store()
        {
            let beat = dist::Heartbeat::start(store, 0, dist::Heartbeat::period(world.timeout));
            self.heartbeat = Some(beat.map_err(|e| self.failed("starting rank 0's heartbeat", e))?);
        }
        self.world = Some(world.clone());
        self.describe = format!("{}, data-parallel over {} ranks (c10d)", self.describe, world.size);
        let _no_grad = ops.no_grad();
        let mut state = self.store.values.clone();
        dist::broadcast(ops, &mut state).map_err(|e| self.failed("the broadcast of rank 0's parameters", e))?;
        self.store.values = state;
        Ok(())
    }

    /// [`Executor::barrier`](crate::backend::Executor::barrier). Rank 0 waits the collective
    /// timeout for the others (they are already waiting); the others wait up to `timeout` for
    /// rank 0 while its heartbeat moves, and name it once it has not for the collective timeout.
    pub(super) fn wait_for_ranks(&mut self, tag: &str, timeout: Duration) -> Result<(), ExecError> {
        let Some(w) = &self.world else { return Ok(()) };
        let ops = self.ops.as_ref();
        let key = |r: usize| format!("barrier/{tag}/{r}");
        // Rank 0 leaves once every rank has seen it arrive: it may exit (and take the store it
        // serves with it) right after the last barrier.
        let seen = |r: usize| format!("barrier/{tag}/{r}/seen");
        let at = format!("waiting for every rank at `{tag}`");
        ops.store_set(&key(w.rank), b"1").map_err(|e| self.failed(&at, e))?;
        if w.rank == 0 {
            for r in 1..w.size {
                ops.store_get(&key(r), w.timeout).map_err(|e| self.failed(&at, e))?;
            }
            for r in 1..w.size {
                ops.store_get(&seen(r), w.timeout).map_err(|e| self.failed(&at, e))?;
            }
            return Ok(());
        }
        self.await_rank0(w, &key(0), &at, timeout)?;
        ops.store_set(&seen(w.rank), b"1").map_err(|e| self.failed(&at, e))
    }

    /// A rank other than 0 waits until rank 0 has set `ready` in the store: up to `timeout` while
    /// rank 0's heartbeat moves, naming it once the heartbeat has not for the collective timeout
    /// (or the store it serves stops answering). `at` says what the rank was waiting for.
    fn await_rank0(&self, w: &World, ready: &str, at: &str, timeout: Duration) -> Result<(), ExecError> {
        let ops = self.ops.as_ref();
        let is_set = || ops.store_check(ready);
        let beat = || dist::heartbeat::read(ops);
        let poll = Duration::from_millis(100);
        let waited = dist::heartbeat::wait_for_rank0(&is_set, &beat, w.timeout, timeout, poll);
        let silent = |why: String| {
            ExecError::Collective(format!(
                "rank {} of {}: {at} failed: rank 0 stopped answering ({why}): it died or hangs; its own output says why\n  hint: fix or restart it, then run the same command with --resume (any number of workers)",
                w.rank, w.size
            ))
        };
        match waited {
            Ok(()) => Ok(()),
            Err(dist::heartbeat::WaitError::Silent(d)) => {
                Err(self.failed(at, TensorError::new(format!("rank 0's heartbeat stopped {} s ago", d.as_secs()))))
            }
            Err(dist::heartbeat::WaitError::Store(e)) => Err(silent(format!(
                "the rendezvous store at {}:{} it serves did not answer: {}",
                w.master_addr,
                w.master_port,
                e.trim()
            ))),
            Err(dist::heartbeat::WaitError::TooLong(d)) => Err(silent(format!(
                "it did not get there within {} s, the bound on rank 0's evaluation and checkpoints",
                d.as_secs()
            ))),
        }
    }

    /// Every rank's `words` in rank order (for [`Executor::all_gather`](crate::backend::Executor::all_gather)):
    /// each rank sets `gather/{tag}/{rank}` in the rendezvous store and reads the others'.
    /// Others wait for rank 0 as at a barrier (up to `timeout` while its heartbeat moves), rank 0
    /// waits the collective timeout for each of them.
    pub(super) fn gather_over_ranks(
        &self,
        tag: &str,
        words: &[u64],
        timeout: Duration,
    ) -> Result<Vec<Vec<u64>>, ExecError> {
        let Some(w) = &self.world else { return Ok(vec![words.to_vec()]) };
        let ops = self.ops.as_ref();
        let key = |r: usize| format!("gather/{tag}/{r}");
        let what = format!("exchanging `{tag}` with every rank");
        let bytes: Vec<u8> = words.iter().flat_map(|v| v.to_le_bytes()).collect();
        ops.store_set(&key(w.rank), &bytes).map_err(|e| self.failed(&what, e))?;
        let mut all = Vec::with_capacity(w.size);
        for r in 0..w.size {
            if r == w.rank {
                all.push(words.to_vec());
                continue;
            }
            if r == 0 {
                self.await_rank0(w, &key(0), &what, timeout)?;
            }
            let b = ops.store_get(&key(r), w.timeout).map_err(|e| self.failed(&what, e))?;
            if b.len() % 8 != 0 {
                return Err(ExecError::Collective(format!("{what}: rank {r} sent {} bytes, not whole words", b.len())));
            }
            all.push(b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect());
        }
        Ok(all)
    }

    /// `values` summed over the ranks (for [`Executor::agree`](crate::backend::Executor::agree));
    /// `what` names the collective in a failure report.
    pub(super) fn sum_over_ranks(&self, values: &[f64], what: &str) -> Result<Vec<f64>, ExecError> {
        if self.world.is_none() {
            return Ok(values.to_vec());
        }
        let ops = self.ops.as_ref();
        let host: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        let mut t = ops.upload(&host, &[host.len()])?;
        ops.all_reduce_(&mut t).map_err(|e| self.failed(what, e))?;
        Ok(ops.download(&t)?.into_iter().map(f64::from).collect())
    }
}

/// Why joining failed, with what to do about the usual causes.
fn join_error(world: &World, message: &str) -> String {
    let at = format!("{}:{}", world.master_addr, world.master_port);
    let lower = message.to_lowercase();
    let hint = if lower.contains("addrinuse") || lower.contains("address already in use") {
        format!(
            "another process already listens on port {} (an earlier run?): choose a free one with --master-port or MASTER_PORT",
            world.master_port
        )
    } else if lower.contains("timed out") || lower.contains("timeout") || lower.contains("connect") {
        format!(
            "not every rank reached {at} within {} s: check that all {} ranks were started with the same MASTER_ADDR and MASTER_PORT, that rank 0 runs, and that no firewall blocks the port (or raise train.dist_timeout_s)",
            world.timeout.as_secs(),
            world.size
        )
    } else {
        "check MASTER_ADDR, MASTER_PORT and the network interface (GLOO_SOCKET_IFNAME, as for PyTorch)".to_string()
    };
    format!("rank {} of {} could not join the run at {at}: {}\n  hint: {hint}", world.rank, world.size, message.trim())
}
