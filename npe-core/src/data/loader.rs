//! The batch loader: per-epoch seeded shuffling, batches assembled by worker threads with
//! bounded prefetch, `drop_last`, and a resumable position. Batch `b` of epoch `e` depends only
//! on `(seed, e, b)`, never on thread timing, so a resumed run sees exactly the remaining
//! batches an uninterrupted run would.

use super::augment::{RawImage, Transform};
use super::dataset::{Masks, Pixels, Split};
use super::error::{DataError, Result};
use super::folder::decode;
use crate::batch::HostBatch;
use crate::rng::Rng;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Loader settings.
#[derive(Clone, Debug)]
pub struct LoaderOptions {
    /// Samples per batch.
    pub batch_size: usize,
    /// Reshuffle every epoch.
    pub shuffle: bool,
    /// Drop the last incomplete batch.
    pub drop_last: bool,
    /// Seed of shuffling and augmentation.
    pub seed: u64,
    /// Worker threads (0: assemble on the caller's thread).
    pub workers: usize,
    /// Batches prepared ahead, in total.
    pub prefetch: usize,
    /// Distinguishes the random streams of different loaders over the same seed.
    pub stream: u64,
}

struct Inner {
    split: Split,
    transform: Transform,
    opts: LoaderOptions,
    channels: usize,
}

/// Batches of one split.
#[derive(Clone)]
pub struct Loader {
    inner: Arc<Inner>,
    /// `(rank, ranks)`: each batch is this rank's part of the global batch (see `npe_core::dist`).
    shard: (usize, usize),
}

impl Loader {
    /// A loader over `split` (images of `channels`), transformed by `transform`.
    pub fn new(split: Split, transform: Transform, channels: usize, opts: LoaderOptions) -> Self {
        assert!(opts.batch_size > 0, "batch size must be positive");
        Self { inner: Arc::new(Inner { split, transform, opts, channels }), shard: (0, 1) }
    }

    /// The same batches, each cut down to rank `rank`'s part of `ranks` ([`crate::batch::shard`]).
    /// A last global batch with fewer samples than ranks is dropped, so no rank gets none.
    pub fn sharded(&self, rank: usize, ranks: usize) -> Loader {
        assert!(rank < ranks, "rank {rank} of {ranks}");
        Loader { inner: self.inner.clone(), shard: (rank, ranks) }
    }

    /// Samples in the split.
    pub fn samples(&self) -> usize {
        self.inner.split.len()
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        let (n, b) = (self.inner.split.len(), self.inner.opts.batch_size);
        let short_last = n % b != 0 && n % b < self.shard.1;
        if self.inner.opts.drop_last || short_last { n / b } else { n.div_ceil(b) }
    }

    /// True if an epoch has no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The order in which epoch `epoch` visits the split's samples.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let n = self.inner.split.len();
        if self.inner.opts.shuffle {
            Rng::stream(self.inner.opts.seed, &[0x5f1e, self.inner.opts.stream, epoch]).permutation(n)
        } else {
            (0..n).collect()
        }
    }

    /// Assemble batch `b` of `epoch` on this thread.
    pub fn batch(&self, epoch: u64, b: usize) -> Result<HostBatch> {
        let order = self.order(epoch);
        self.inner.assemble(epoch, b, &order, self.shard)
    }

    /// Iterate over the batches of `epoch` from batch `start` on (a resumed epoch starts later).
    pub fn iter(&self, epoch: u64, start: usize) -> BatchIter {
        self.iter_every(epoch, start, 1)
    }

    /// Iterate over batches `start`, `start + step`, `start + 2·step`, ... of `epoch` (a rank's
    /// share of a sharded evaluation); `step` ≥ 1.
    pub fn iter_every(&self, epoch: u64, start: usize, step: usize) -> BatchIter {
        let step = step.max(1);
        let order = Arc::new(self.order(epoch));
        let end = self.len();
        let workers = self.inner.opts.workers;
        if workers == 0 {
            return BatchIter {
                loader: Some((self.clone(), order)),
                next: start,
                start,
                step,
                end,
                epoch,
                chans: vec![],
                handles: vec![],
            };
        }
        let per_worker = (self.inner.opts.prefetch / workers).max(1);
        let mut chans = Vec::new();
        let mut handles = Vec::new();
        for w in 0..workers {
            let (tx, rx): (SyncSender<Result<HostBatch>>, Receiver<Result<HostBatch>>) = sync_channel(per_worker);
            let inner = self.inner.clone();
            let order = order.clone();
            let shard = self.shard;
            handles.push(std::thread::spawn(move || {
                // Worker w assembles the iteration's items w, w+W, ... in order.
                let mut b = start + w * step;
                while b < end {
                    let r = inner.assemble(epoch, b, &order, shard);
                    let failed = r.is_err();
                    if tx.send(r).is_err() || failed {
                        return;
                    }
                    b += workers * step;
                }
            }));
            chans.push(rx);
        }
        BatchIter { loader: None, next: start, start, step, end, epoch, chans, handles }
    }
}

impl Inner {
    fn raw(&self, storage: usize) -> Result<RawImage> {
        let (h, w, c, pixels) = match &self.split.pixels {
            Pixels::Dense(d) => (d.h, d.w, d.c, d.image(storage).to_vec()),
            Pixels::Files { paths, channels } => {
                let (h, w, px) = decode(&paths[storage], *channels)?;
                (h, w, *channels, px)
            }
        };
        let mask = match &self.split.masks {
            None => None,
            Some(Masks::Dense(m)) => Some(m.image(storage).to_vec()),
            Some(Masks::Files(paths)) => {
                let (mh, mw, m) = super::seg::decode_mask(&paths[storage])?;
                if (mh, mw) != (h, w) {
                    return Err(DataError::Invalid(format!(
                        "{}: label map is {mh}×{mw} but its image is {h}×{w}",
                        paths[storage].display()
                    )));
                }
                Some(m)
            }
        };
        let map = self.split.mask_map;
        let mut mask = mask.map(|m| {
            if map == super::dataset::MaskMap::Identity { m } else { m.into_iter().map(|v| map.apply(v)).collect() }
        });
        if let Some(m) = mask.as_mut()
            && let Some(inside) = self.split.fov.inside(storage, &pixels, h, w, c)?
        {
            super::fov::apply(m, &inside, self.transform.ignore());
        }
        Ok(RawImage { h, w, c, pixels, mask })
    }

    fn assemble(&self, epoch: u64, b: usize, order: &[usize], shard: (usize, usize)) -> Result<HostBatch> {
        let bs = self.opts.batch_size;
        let global = &order[b * bs..((b + 1) * bs).min(order.len())];
        let positions = &global[crate::batch::shard(global.len(), shard.0, shard.1)];
        let global_len = if shard.1 > 1 { global.len() } else { 0 };
        let [oh, ow] = self.transform.out;
        let (n, c) = (positions.len(), self.channels);
        let dense = self.split.is_dense();
        let mut images = vec![0f32; n * c * oh * ow];
        let mut labels = vec![0i64; if dense { n * oh * ow } else { n }];
        let mut indices = Vec::with_capacity(n);
        for (k, &p) in positions.iter().enumerate() {
            let storage = self.split.index[p] as usize;
            indices.push(storage as u32);
            let raw = self.raw(storage)?;
            let mut rng = Rng::stream(self.opts.seed, &[0xa06, self.opts.stream, epoch, storage as u64]);
            let out = &mut images[k * c * oh * ow..(k + 1) * c * oh * ow];
            if dense {
                let m = &mut labels[k * oh * ow..(k + 1) * oh * ow];
                self.transform.apply(raw, &mut rng, out, Some(m));
            } else {
                self.transform.apply(raw, &mut rng, out, None);
                labels[k] = self.split.labels[storage] as i64;
            }
        }
        // Labels outside the field of view hold the ignore index (`Inner::raw`), so they mark it.
        let region = (dense && !matches!(self.split.fov, super::fov::Fov::Whole)).then(|| {
            let ignore = self.transform.ignore() as i64;
            labels.iter().map(|&l| (l != ignore) as u8 as f32).collect()
        });
        Ok(HostBatch { images, shape: [n, c, oh, ow], labels, dense, indices, global_len, region })
    }
}

/// The batches of one epoch, in order.
pub struct BatchIter {
    loader: Option<(Loader, Arc<Vec<usize>>)>,
    next: usize,
    start: usize,
    /// Batches between consecutive items (1, or the ranks of a sharded evaluation).
    step: usize,
    end: usize,
    epoch: u64,
    chans: Vec<Receiver<Result<HostBatch>>>,
    handles: Vec<JoinHandle<()>>,
}

impl BatchIter {
    /// Index of the batch the next call returns.
    pub fn position(&self) -> usize {
        self.next
    }
}

impl Iterator for BatchIter {
    type Item = Result<HostBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let b = self.next;
        self.next += self.step;
        if let Some((loader, order)) = &self.loader {
            return Some(loader.inner.assemble(self.epoch, b, order, loader.shard));
        }
        // Worker w produces items w + k·W in order, so batch b (item (b − start) / step) is the
        // next item of channel ((b − start) / step) mod W.
        let chan = &self.chans[((b - self.start) / self.step) % self.chans.len()];
        match chan.recv() {
            Ok(r) => {
                if r.is_err() {
                    self.next = self.end;
                }
                Some(r)
            }
            Err(_) => Some(Err(DataError::Invalid("a data loader worker stopped unexpectedly".into()))),
        }
    }
}

impl Drop for BatchIter {
    fn drop(&mut self) {
        self.chans.clear(); // workers see a closed channel and stop
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::DenseImages;
    use crate::spec::{AugmentSpec, CropSpec};

    fn loader(workers: usize, drop_last: bool) -> Loader {
        let n = 23;
        let data: Vec<u8> = (0..n * 16).map(|i| (i * 7 % 256) as u8).collect();
        let split = Split::new(
            Pixels::Dense(DenseImages { h: 4, w: 4, c: 1, data: Arc::new(data) }),
            (0..n).map(|i| (i % 3) as u32).collect(),
            None,
        );
        let aug =
            AugmentSpec { random_crop: Some(CropSpec { size: 4, padding: 1 }), hflip: true, ..Default::default() };
        let t = Transform::new(&aug, true, &[0.5], &[0.5], [4, 4], 255);
        Loader::new(
            split,
            t,
            1,
            LoaderOptions { batch_size: 5, shuffle: true, drop_last, seed: 11, workers, prefetch: 4, stream: 0 },
        )
    }

    #[test]
    fn threaded_equals_single_threaded_and_covers_the_epoch() {
        let a: Vec<HostBatch> = loader(0, false).iter(3, 0).map(Result::unwrap).collect();
        let b: Vec<HostBatch> = loader(3, false).iter(3, 0).map(Result::unwrap).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 5);
        assert_eq!(a.last().unwrap().len(), 3);
        let mut seen: Vec<u32> = a.iter().flat_map(|b| b.indices.clone()).collect();
        seen.sort();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        assert_eq!(loader(2, true).iter(3, 0).count(), 4);
    }

    #[test]
    fn every_step_th_batch_is_the_same_batch_with_or_without_workers() {
        let all: Vec<HostBatch> = loader(0, false).iter(3, 0).map(Result::unwrap).collect();
        for workers in [0, 1, 2, 3] {
            for (start, step) in [(0, 2), (1, 2), (0, 3), (2, 3), (4, 7)] {
                let got: Vec<HostBatch> =
                    loader(workers, false).iter_every(3, start, step).map(Result::unwrap).collect();
                let want: Vec<HostBatch> = all.iter().skip(start).step_by(step).cloned().collect();
                assert_eq!(got, want, "workers {workers}, start {start}, step {step}");
            }
        }
    }

    #[test]
    fn shards_split_every_global_batch_into_the_same_samples() {
        let whole: Vec<HostBatch> = loader(0, false).iter(2, 0).map(Result::unwrap).collect();
        // 23 samples in batches of 5: the last global batch has 3, enough for 3 ranks, not 4.
        for ranks in [2, 3, 4] {
            let parts: Vec<Vec<HostBatch>> = (0..ranks)
                .map(|r| loader(2, false).sharded(r, ranks).iter(2, 0).map(Result::unwrap).collect())
                .collect();
            let expect = if ranks == 4 { 4 } else { 5 };
            for (b, global) in whole.iter().take(expect).enumerate() {
                let joined: Vec<u32> = parts.iter().flat_map(|p| p[b].indices.clone()).collect();
                assert_eq!(joined, global.indices, "batch {b} over {ranks} ranks");
                let images: Vec<f32> = parts.iter().flat_map(|p| p[b].images.clone()).collect();
                assert_eq!(images, global.images, "augmented exactly as one process would");
                let shares: f64 = parts.iter().map(|p| p[b].share()).sum();
                assert!((shares - 1.0).abs() < 1e-12);
            }
            assert!(parts.iter().all(|p| p.len() == expect), "{ranks} ranks");
        }
    }

    #[test]
    fn resumed_epoch_sees_the_remaining_batches() {
        let full: Vec<HostBatch> = loader(2, false).iter(7, 0).map(Result::unwrap).collect();
        let rest: Vec<HostBatch> = loader(2, false).iter(7, 2).map(Result::unwrap).collect();
        assert_eq!(&full[2..], &rest[..]);
        // Epochs differ in order and augmentation.
        let other: Vec<HostBatch> = loader(0, false).iter(8, 0).map(Result::unwrap).collect();
        assert_ne!(full[0].indices, other[0].indices);
    }

    #[test]
    fn dropping_an_iterator_early_stops_its_workers() {
        let l = loader(3, false);
        let mut it = l.iter(0, 0);
        assert!(it.next().unwrap().is_ok());
        drop(it); // must not hang
    }
}
