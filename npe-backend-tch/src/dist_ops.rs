//! The core's [`DistOps`] on [`TchOps`]: joining a run, c10d's collectives on the process
//! group of [`crate::dist`], and the rendezvous store with every call bounded in time.

use crate::dist::Group;
use crate::ops::{TchOps, tensor, wrap};
use npe_core::dist::World;
use npe_core::tensor::{DistOps, SharedStore, TResult, Tensor, TensorError, guarded};
use std::sync::Arc;
use std::time::Duration;

impl TchOps {
    fn shared(&self) -> TResult<&Arc<Group>> {
        self.group.get().ok_or_else(|| TensorError::new("this process has not joined a data-parallel run"))
    }
    fn group(&self) -> TResult<&Group> {
        self.group
            .get()
            .map(|g| &**g)
            .ok_or_else(|| TensorError::new("this process has not joined a data-parallel run"))
    }
}

impl DistOps for TchOps {
    fn join(&self, world: &World) -> TResult<()> {
        guarded("join", "libtorch", || {
            let g = Group::join(world, self.device != tch::Device::Cpu)?;
            self.group.set(Arc::new(g)).map_err(|_| TensorError::new("this process has already joined a run"))
        })
    }
    fn all_reduce_(&self, x: &mut Tensor) -> TResult<()> {
        guarded("all_reduce_", "libtorch", || {
            let Some(g) = self.group.get() else { return Ok(()) };
            let c = tensor(x)?.contiguous();
            g.all_reduce(&c)?;
            *x = wrap(c);
            Ok(())
        })
    }
    fn broadcast_(&self, x: &mut Tensor, root: usize) -> TResult<()> {
        guarded("broadcast_", "libtorch", || {
            let Some(g) = self.group.get() else { return Ok(()) };
            let c = tensor(x)?.contiguous();
            g.broadcast(&c, root)?;
            *x = wrap(c);
            Ok(())
        })
    }
    fn all_reduce_autograd(&self, x: &Tensor) -> TResult<Tensor> {
        guarded("all_reduce_autograd", "libtorch", || {
            let Some(g) = self.group.get() else { return Ok(x.clone()) };
            Ok(wrap(g.all_reduce_autograd(&tensor(x)?.contiguous())?))
        })
    }
    fn store_set(&self, key: &str, value: &[u8]) -> TResult<()> {
        guarded("store_set", "libtorch", || {
            let (key, value) = (key.to_string(), value.to_vec());
            bounded(self.shared()?, "a set", answer_limit(self.group()?), move |g| g.set(&key, &value))
        })
    }
    fn store_get(&self, key: &str, timeout: Duration) -> TResult<Vec<u8>> {
        guarded("store_get", "libtorch", || {
            let g = self.group()?;
            let k = key.to_string();
            bounded(self.shared()?, "a get", timeout + answer_limit(g), move |g| g.get(&k, timeout))
        })
    }
    fn store_check(&self, key: &str) -> TResult<bool> {
        guarded("store_check", "libtorch", || {
            let k = key.to_string();
            bounded(self.shared()?, "a check", answer_limit(self.group()?), move |g| g.check(&k))
        })
    }
    fn shared_store(&self) -> Option<Arc<dyn SharedStore>> {
        self.group.get().map(|g| g.clone() as Arc<dyn SharedStore>)
    }
}

/// How long a store call may go unanswered: a healthy store answers in milliseconds, and one
/// whose serving process is stopped never does (c10d's TCPStore reads its socket without a
/// timeout), so a call gets the collective timeout, at most 4 s.
fn answer_limit(g: &Group) -> Duration {
    g.timeout.min(Duration::from_secs(4))
}

/// `call` on the store, on a helper thread, or an error once `limit` has passed without an
/// answer (the thread is then left behind, blocked; the run is failing anyway).
fn bounded<T: Send + 'static>(
    g: &Arc<Group>,
    what: &str,
    limit: Duration,
    call: impl FnOnce(&Group) -> TResult<T> + Send + 'static,
) -> TResult<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    let g = g.clone();
    std::thread::Builder::new()
        .name("npe-store-call".into())
        .spawn(move || {
            let _ = tx.send(call(&g));
        })
        .map_err(|e| TensorError::new(format!("c10d: cannot start a store call: {e}")))?;
    rx.recv_timeout(limit).unwrap_or_else(|_| {
        Err(TensorError::new(format!(
            "c10d: the rendezvous store did not answer {what} within {:.0} s (the process serving it is stopped, hangs or is unreachable)",
            limit.as_secs_f64()
        )))
    })
}
