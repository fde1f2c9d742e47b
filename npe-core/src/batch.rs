//! Host batches: what the core's loader hands to a backend.

/// The part of a global batch of `n` samples that rank `rank` of `size` trains on (see
/// `npe_core::dist`): contiguous, disjoint, together the whole batch, sizes differing by at most one.
pub fn shard(n: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    n * rank / size..n * (rank + 1) / size
}

/// A batch of normalised images and their labels, in host memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostBatch {
    /// `[n, c, h, w]` floats, normalised.
    pub images: Vec<f32>,
    /// `[n, c, h, w]`.
    pub shape: [usize; 4],
    /// Class per sample (`[n]`), or per pixel (`[n, h, w]`, ignored pixels = `ignore_index`).
    pub labels: Vec<i64>,
    /// True when `labels` are per pixel.
    pub dense: bool,
    /// Storage index of each sample (for reproducibility checks and debugging).
    pub indices: Vec<u32>,
    /// Samples in the global batch this is a rank's shard of (0: not sharded, the whole batch).
    pub global_len: usize,
    /// Per pixel (`[n, h, w]`): 1 inside the field of view, 0 outside; `None` when every pixel
    /// counts (sources without one). The count-free calibrations average over it: it says
    /// where the image is, not which class a pixel is.
    pub region: Option<Vec<f32>>,
}

impl HostBatch {
    /// Samples in the batch.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// The fraction of the global batch this batch holds (1 unless sharded over ranks).
    pub fn share(&self) -> f64 {
        if self.global_len == 0 { 1.0 } else { self.len() as f64 / self.global_len as f64 }
    }

    /// Label shape: `[n]` or `[n, h, w]`.
    pub fn label_shape(&self) -> Vec<usize> {
        if self.dense { vec![self.shape[0], self.shape[2], self.shape[3]] } else { vec![self.shape[0]] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_a_batch_once() {
        for n in [0, 1, 5, 64, 127, 128] {
            for size in 1..=4 {
                let parts: Vec<_> = (0..size).map(|r| shard(n, r, size)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, n);
                for p in parts.windows(2) {
                    assert_eq!(p[0].end, p[1].start);
                }
                let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
                assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1, "{lens:?}");
            }
        }
        assert_eq!(shard(128, 1, 2), 64..128);
    }
}
