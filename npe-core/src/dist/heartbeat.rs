//! Rank 0's sign of life. Rank 0 alone evaluates and writes checkpoints while the other ranks
//! wait at a barrier, which may take far longer than a collective may. A thread on rank 0 bumps
//! a counter in the rendezvous store every [`Heartbeat::period`], so a waiting rank tells a slow
//! rank 0 (the counter moves) from a dead or stopped one (it does not, or the store stops
//! answering) within `train.dist_timeout_s`.

use crate::tensor::{Ops, SharedStore, TResult, TensorError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The store key holding `rank`'s counter.
pub fn key(rank: usize) -> String {
    format!("alive/{rank}")
}

/// A running heartbeat; stops on drop (its thread ends within 50 ms, or stays blocked in a store
/// that no longer answers: it is never joined).
pub struct Heartbeat {
    stop: Arc<AtomicBool>,
    _thread: JoinHandle<()>,
}

impl Heartbeat {
    /// How often the counter moves for a run whose collectives time out after `timeout`: four
    /// beats per timeout, between 0.25 s and 5 s apart.
    pub fn period(timeout: Duration) -> Duration {
        (timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
    }

    /// Start beating as `rank` every `period`. The first beat is written before this returns.
    pub fn start(store: Arc<dyn SharedStore>, rank: usize, period: Duration) -> TResult<Heartbeat> {
        store.set(&key(rank), b"0")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("npe-heartbeat-{rank}"))
            .spawn(move || {
                let mut beat: u64 = 0;
                let mut next = Instant::now() + period;
                while !flag.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        beat += 1;
                        // A failed write is the store going away: the collectives report that.
                        let _ = store.set(&key(rank), beat.to_string().as_bytes());
                        next += period;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
            .map_err(|e| TensorError::new(format!("cannot start rank {rank}'s heartbeat thread: {e}")))?;
        Ok(Heartbeat { stop, _thread: thread })
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Why waiting for rank 0 failed.
#[derive(Debug, PartialEq)]
pub enum WaitError {
    /// The counter did not move (or never appeared) for the given time.
    Silent(Duration),
    /// The store did not answer: rank 0 (or the agent serving it) died or is stopped.
    Store(String),
    /// Rank 0 kept beating but did not arrive within the wait's own bound.
    TooLong(Duration),
}

/// Rank 0's counter as `ops`' store holds it (`None` before its first beat).
pub fn read(ops: &dyn Ops) -> TResult<Option<Vec<u8>>> {
    if !ops.store_check(&key(0))? {
        return Ok(None);
    }
    ops.store_get(&key(0), Duration::from_secs(1)).map(Some)
}

/// Wait until `ready` says rank 0 has arrived, checking `ready` and rank 0's counter (`beat`,
/// e.g. [`read`]) every `poll`. Rank 0 counts as silent once its counter has not moved for
/// `silence` (when it never beat at all, a backend without a heartbeat, only `bound` applies).
pub fn wait_for_rank0(
    ready: &dyn Fn() -> TResult<bool>,
    beat: &dyn Fn() -> TResult<Option<Vec<u8>>>,
    silence: Duration,
    bound: Duration,
    poll: Duration,
) -> Result<(), WaitError> {
    let start = Instant::now();
    let (mut last, mut moved) = (None::<Vec<u8>>, Instant::now());
    loop {
        if ready().map_err(|e| WaitError::Store(e.message))? {
            return Ok(());
        }
        if let Some(b) = beat().map_err(|e| WaitError::Store(e.message))? {
            if last.as_ref() != Some(&b) {
                last = Some(b);
                moved = Instant::now();
            }
        }
        if last.is_some() && moved.elapsed() > silence {
            return Err(WaitError::Silent(moved.elapsed()));
        }
        if start.elapsed() > bound {
            return Err(WaitError::TooLong(start.elapsed()));
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_is_a_quarter_of_the_timeout_within_bounds() {
        assert_eq!(Heartbeat::period(Duration::from_secs(60)), Duration::from_secs(5));
        assert_eq!(Heartbeat::period(Duration::from_secs(10)), Duration::from_millis(2500));
        assert_eq!(Heartbeat::period(Duration::from_millis(100)), Duration::from_millis(250));
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_beating_rank_0_is_waited_for_and_a_silent_one_is_not() {
        use std::cell::Cell;
        // Beats for 30 polls, arrives at poll 40: waited for.
        let n = Cell::new(0u64);
        let ready = || {
            n.set(n.get() + 1);
            Ok(n.get() >= 40)
        };
        let beat = || Ok(Some(n.get().min(30).to_string().into_bytes()));
        assert_eq!(wait_for_rank0(&ready, &beat, 50 * MS, Duration::from_secs(5), MS), Ok(()));
        // Stops beating and never arrives: silent after `silence`, long before `bound`.
        let t = Instant::now();
        let never = || Ok(false);
        let frozen = || Ok(Some(b"7".to_vec()));
        assert!(matches!(
            wait_for_rank0(&never, &frozen, 30 * MS, Duration::from_secs(5), MS),
            Err(WaitError::Silent(_))
        ));
        assert!(t.elapsed() < Duration::from_secs(2));
        // No heartbeat at all: only the bound applies.
        let none = || Ok(None);
        assert!(matches!(wait_for_rank0(&never, &none, MS, 40 * MS, MS), Err(WaitError::TooLong(_))));
        // A store error ends the wait at once.
        let broken = || Err(TensorError::new("connection reset"));
        assert_eq!(
            wait_for_rank0(&broken, &none, MS, Duration::from_secs(5), MS),
            Err(WaitError::Store("connection reset".into()))
        );
    }
}
