//! The collective steps of data-parallel training, over a backend's [`DistOps`]: bucketed sums
//! and broadcasts of many tensors, the check that every rank runs the same pipeline, and the
//! report of a failed collective that names the ranks that stopped answering.

use super::World;
use crate::error::Result;
use crate::tensor::{Ops, TResult, Tensor};
use std::ops::Range;
use std::time::{Duration, Instant};

/// Elements per bucket: 25 MB of float32, PyTorch DDP's `bucket_cap_mb`.
const BUCKET_ELEMS: usize = 25 * (1 << 20) / 4;

/// Consecutive runs of tensors of at most [`BUCKET_ELEMS`] elements (one tensor may exceed it).
fn buckets(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut out = vec![];
    let (mut start, mut filled) = (0, 0);
    for (i, &n) in sizes.iter().enumerate() {
        if filled > 0 && filled + n > BUCKET_ELEMS {
            out.push(start..i);
            (start, filled) = (i, 0);
        }
        filled += n;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Apply `collective` to `ts` a bucket at a time: each bucket's tensors flattened into one
/// buffer, and the result copied back into them.
fn bucketed(ops: &dyn Ops, ts: &mut [Tensor], collective: impl Fn(&mut Tensor) -> TResult<()>) -> TResult<()> {
    let sizes: Vec<usize> = ts.iter().map(|t| Ok(ops.shape(t)?.iter().product())).collect::<TResult<_>>()?;
    for range in buckets(&sizes) {
        let flat: Vec<Tensor> = ts[range.clone()]
            .iter()
            .zip(&sizes[range.clone()])
            .map(|(t, &n)| ops.reshape(t, &[n]))
            .collect::<TResult<_>>()?;
        let mut buf = ops.cat(&flat, 0)?;
        drop(flat);
        collective(&mut buf)?;
        let mut offset = 0;
        for i in range {
            let piece = ops.slice(&buf, 0, offset, offset + sizes[i], 1)?;
            ops.assign_(&mut ts[i], &piece)?;
            offset += sizes[i];
        }
    }
    Ok(())
}

/// Sum every tensor over ranks, in place (bucketed).
pub fn all_reduce_sum(ops: &dyn Ops, ts: &mut [Tensor]) -> TResult<()> {
    bucketed(ops, ts, |b| ops.all_reduce_(b))
}

/// Copy rank 0's tensors to every rank, in place (bucketed).
pub fn broadcast(ops: &dyn Ops, ts: &mut [Tensor]) -> TResult<()> {
    bucketed(ops, ts, |b| ops.broadcast_(b, 0))
}

/// Error unless every rank's `hash` (a digest of the resolved pipeline) equals rank 0's. Rank 0 compares all
/// ranks, the others compare themselves with rank 0, so every rank that should stop does.
pub fn check_same_pipeline(ops: &dyn Ops, world: &World, hash: &str) -> Result<()> {
    let key = |r: usize| format!("pipeline/{r}");
    let get = |r: usize| -> Result<String> {
        let v = ops.store_get(&key(r), world.timeout).map_err(|e| format!("waiting for rank {r} to join: {e}"))?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    };
    ops.store_set(&key(world.rank), hash.as_bytes())?;
    let hint = "\n  hint: every rank must run the same pipeline file with the same --set overrides and NPE_* variables";
    if world.rank == 0 {
        let mut differ = vec![];
        for r in 1..world.size {
            if get(r)? != hash {
                differ.push(r.to_string());
            }
        }
        if !differ.is_empty() {
            let m = format!(
                "rank(s) {} run a different pipeline than rank 0 (pipeline hash {hash}){hint}",
                differ.join(", ")
            );
            let _ = ops.store_set(&format!("failed/{}", world.rank), m.as_bytes());
            return Err(m.into());
        }
    } else {
        let theirs = get(0)?;
        if theirs != hash {
            return Err(format!(
                "rank {} runs a different pipeline than rank 0 (pipeline hash {hash}, rank 0's {theirs}){hint}",
                world.rank
            )
            .into());
        }
    }
    Ok(())
}

/// The report of a collective `what` that failed on this rank with `error`: this rank's failure
/// goes into the store, then for a few seconds it collects the others'. Ranks that report
/// nothing have died or hang, and are named; when the store itself is gone, so is the rank that
/// served it.
pub fn diagnose(ops: &dyn Ops, world: &World, what: &str, error: &str) -> String {
    let me = world.rank;
    let mut msg = format!("rank {me} of {}: {what} failed: {}", world.size, error.trim());
    let hint =
        "\n  hint: fix or restart the failed rank, then run the same command with --resume (any number of workers)";
    let unreachable = format!(
        "\n  rank 0 stopped answering: the rendezvous store at {}:{} it serves (under torchrun, its agent does) does not answer either, so it died or is stopped",
        world.master_addr, world.master_port
    );
    if ops.store_set(&format!("failed/{me}"), format!("{what} failed: {}", error.trim()).as_bytes()).is_err() {
        return msg + &unreachable + hint;
    }
    let grace = world.timeout.min(Duration::from_secs(4));
    let start = Instant::now();
    let others: Vec<usize> = (0..world.size).filter(|&r| r != me).collect();
    let mut reported = vec![];
    loop {
        let checked: Result<Vec<bool>, _> = others.iter().map(|r| ops.store_check(&format!("failed/{r}"))).collect();
        let Ok(checked) = checked else {
            return msg + &unreachable + hint;
        };
        reported = others.iter().zip(checked).filter(|(_, c)| *c).map(|(r, _)| *r).collect();
        if reported.len() == others.len() || start.elapsed() >= grace {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let silent: Vec<String> = others.iter().filter(|r| !reported.contains(r)).map(usize::to_string).collect();
    if !silent.is_empty() {
        msg += &format!(
            "\n  rank {} stopped answering (no failure report within {} s): it died or hangs; its own output says why",
            silent.join(", rank "),
            grace.as_secs()
        );
    }
    for r in reported {
        if let Ok(v) = ops.store_get(&format!("failed/{r}"), Duration::from_secs(1)) {
            msg += &format!("\n  rank {r} reports: {}", String::from_utf8_lossy(&v));
        }
    }
    msg + hint
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_at_most_the_cap_unless_one_tensor_is_larger() {
        assert_eq!(buckets(&[]), Vec::<Range<usize>>::new());
        assert_eq!(buckets(&[10, 20, 30]), vec![0..3]);
        let cap = BUCKET_ELEMS;
        assert_eq!(buckets(&[cap - 1, 1, 1]), vec![0..2, 2..3]);
        assert_eq!(buckets(&[5, 3 * cap, 5]), vec![0..1, 1..2, 2..3]);
    }
}
