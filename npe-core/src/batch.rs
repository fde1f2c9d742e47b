//! Host batches: what the core's loader hands to a backend.

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

    /// Label shape: `[n]` or `[n, h, w]`.
    pub fn label_shape(&self) -> Vec<usize> {
        if self.dense { vec![self.shape[0], self.shape[2], self.shape[3]] } else { vec![self.shape[0]] }
    }
}
