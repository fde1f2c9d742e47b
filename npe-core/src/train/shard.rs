//! A sharded evaluation's tallies. Each rank evaluates every `ranks`-th batch; what it gathered
//! is exchanged with the other ranks and merged so that any sharding gives one process's numbers
//! bit for bit: floating-point parts are added in batch order, counts are integers.

use super::TrainError;
use crate::backend::{ExecError, Executor};

/// Which batches this process evaluates: `rank`, `rank + ranks`, ...
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Shard {
    pub rank: usize,
    pub ranks: usize,
}

impl Shard {
    pub fn of(exec: &dyn Executor) -> Self {
        let (rank, ranks) = exec.eval_shard();
        Shard { rank, ranks: ranks.max(1) }
    }
}

/// What one pass gathered: per batch its floating-point contributions, and integer counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Tally {
    /// Per batch evaluated: its index and its contributions, in the pass's fixed layout.
    pub parts: Vec<(usize, Vec<f64>)>,
    /// Counts (confusion margins, histogram bins, images), summed over ranks.
    pub counts: Vec<u64>,
}

impl Tally {
    /// No batch yet, `counts` zero counts.
    pub fn new(counts: usize) -> Self {
        Tally { parts: vec![], counts: vec![0; counts] }
    }

    /// As words: the part count, each part's batch, length and values (their bits), then the counts.
    fn encode(&self) -> Vec<u64> {
        let mut w = vec![self.parts.len() as u64];
        for (b, v) in &self.parts {
            w.extend([*b as u64, v.len() as u64]);
            w.extend(v.iter().map(|x| x.to_bits()));
        }
        w.extend(&self.counts);
        w
    }

    /// The tally [`Tally::encode`] wrote, with `counts` counts; `None` if the words do not fit.
    fn decode(words: &[u64], counts: usize) -> Option<Self> {
        let mut it = words.iter().copied();
        let n = it.next()? as usize;
        let mut parts = Vec::with_capacity(n.min(words.len()));
        for _ in 0..n {
            let (b, len) = (it.next()? as usize, it.next()? as usize);
            let v: Vec<f64> = it.by_ref().take(len).map(f64::from_bits).collect();
            if v.len() != len {
                return None;
            }
            parts.push((b, v));
        }
        let rest: Vec<u64> = it.collect();
        (rest.len() == counts).then_some(Tally { parts, counts: rest })
    }

    /// Every rank's tallies as one: all parts in batch order, the counts summed.
    fn merge(all: Vec<Tally>, counts: usize) -> Tally {
        let mut out = Tally::new(counts);
        for t in all {
            out.parts.extend(t.parts);
            out.counts.iter_mut().zip(&t.counts).for_each(|(d, s)| *d += s);
        }
        out.parts.sort_by_key(|(b, _)| *b);
        out
    }
}

/// This rank's `tally` merged with every other rank's (one process: itself). `tag` names the
/// exchange in errors.
pub(super) fn exchange(exec: &mut dyn Executor, tag: &str, tally: Tally) -> Result<Tally, TrainError> {
    let counts = tally.counts.len();
    if Shard::of(exec).ranks == 1 {
        return Ok(Tally::merge(vec![tally], counts));
    }
    let words = exec.all_gather(tag, &tally.encode(), super::EVAL_WAIT)?;
    let mut all = Vec::with_capacity(words.len());
    for (r, w) in words.iter().enumerate() {
        let t = Tally::decode(w, counts).ok_or_else(|| {
            ExecError::Collective(format!(
                "the evaluation's `{tag}` tallies from rank {r} do not fit this rank's ({} words): do the ranks run the same pipeline?",
                w.len()
            ))
        })?;
        all.push(t);
    }
    Ok(Tally::merge(all, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(parts: &[(usize, &[f64])], counts: &[u64]) -> Tally {
        Tally { parts: parts.iter().map(|(b, v)| (*b, v.to_vec())).collect(), counts: counts.to_vec() }
    }

    #[test]
    fn encoding_round_trips_every_bit() {
        let t = tally(&[(3, &[0.1, -0.0, f64::MIN_POSITIVE, 1e300]), (5, &[])], &[7, 0, u64::MAX]);
        assert_eq!(Tally::decode(&t.encode(), 3), Some(t.clone()));
        assert_eq!(Tally::decode(&t.encode(), 2), None, "a count too many");
        assert_eq!(Tally::decode(&t.encode()[..4], 3), None, "cut short");
    }

    #[test]
    fn merging_orders_parts_by_batch_and_sums_counts() {
        let a = tally(&[(0, &[1.0]), (2, &[3.0])], &[1, 2]);
        let b = tally(&[(1, &[2.0]), (3, &[4.0])], &[10, 20]);
        let m = Tally::merge(vec![b, a], 2);
        assert_eq!(m.parts.iter().map(|(b, _)| *b).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(m.parts[1].1, [2.0]);
        assert_eq!(m.counts, [11, 22]);
    }
}
