//! Field of view of fundus images: the round region the camera saw. Pixels outside it are
//! unlabelled (the ignore index) for the losses and metrics, and the class prior counts only
//! pixels inside it. DRIVE ships masks; for STARE, which ships none, the usual derived one is
//! a threshold on the red channel, eroded a little.

use super::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

fn default_red_above() -> u8 {
    45
}
fn default_erode() -> usize {
    3
}

/// The derived field of view: red > `red_above`, eroded by `erode` pixels (a square window).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedThreshold {
    /// Red values above this are inside. Default 45 (the dark surround of real STARE images stays below 32; the share inside barely moves between 35 and 50).
    #[serde(default = "default_red_above")]
    pub red_above: u8,
    /// Pixels the region is shrunk by (its rim is darkened, unreliable). Default 3.
    #[serde(default = "default_erode")]
    pub erode: usize,
}

impl Default for RedThreshold {
    fn default() -> Self {
        Self { red_above: default_red_above(), erode: default_erode() }
    }
}

impl RedThreshold {
    /// How summaries name it.
    pub fn describe(&self) -> String {
        format!("FOV red > {}, eroded {} px", self.red_above, self.erode)
    }
}

/// A split's field of view.
#[derive(Clone, Debug, Default)]
pub enum Fov {
    /// Every pixel counts.
    #[default]
    Whole,
    /// One mask file per stored sample (non-zero, i.e. > 127, is inside).
    Files(Arc<Vec<PathBuf>>),
    /// Derived from each image's red channel.
    Derived(RedThreshold),
}

impl Fov {
    /// Which pixels of stored sample `storage` (interleaved `h×w×c` pixels) are inside;
    /// `None` when all are.
    pub fn inside(&self, storage: usize, pixels: &[u8], h: usize, w: usize, c: usize) -> Result<Option<Vec<bool>>> {
        match self {
            Fov::Whole => Ok(None),
            Fov::Derived(rule) => Ok(Some(derive(pixels, h, w, c, *rule))),
            Fov::Files(paths) => {
                let path = &paths[storage];
                let (mh, mw, m) = super::seg::decode_mask(path)?;
                if (mh, mw) != (h, w) {
                    return Err(DataError::Invalid(format!(
                        "{}: field-of-view mask is {mh}×{mw} but its image is {h}×{w}",
                        path.display()
                    )));
                }
                Ok(Some(m.into_iter().map(|v| v > 127).collect()))
            }
        }
    }
}

/// Write `ignore` into the labels outside the field of view.
pub fn apply(labels: &mut [u8], inside: &[bool], ignore: u8) {
    for (l, &i) in labels.iter_mut().zip(inside) {
        if !i {
            *l = ignore;
        }
    }
}

/// The derived field of view of an `h×w×c` image (channel 0 is red).
pub fn derive(pixels: &[u8], h: usize, w: usize, c: usize, rule: RedThreshold) -> Vec<bool> {
    let mut inside: Vec<bool> = (0..h * w).map(|i| pixels[i * c] > rule.red_above).collect();
    if rule.erode > 0 {
        inside = erode(&inside, h, w, rule.erode);
    }
    inside
}

/// Binary erosion by a `(2r+1)²` square (outside the image counts as outside), separably.
fn erode(m: &[bool], h: usize, w: usize, r: usize) -> Vec<bool> {
    let pass = |src: &[bool], len: usize, lines: usize, at: &dyn Fn(usize, usize) -> usize| {
        let mut out = vec![false; src.len()];
        for line in 0..lines {
            // Distance back to the last outside pixel, scanning forward, then backward.
            let mut run = 0usize;
            let mut fwd = vec![0usize; len];
            for i in 0..len {
                run = if src[at(line, i)] { run + 1 } else { 0 };
                fwd[i] = run;
            }
            run = 0;
            for i in (0..len).rev() {
                run = if src[at(line, i)] { run + 1 } else { 0 };
                // Inside after erosion: r inside pixels on each side (and not at the border).
                out[at(line, i)] = fwd[i] > r && run > r;
            }
        }
        out
    };
    let rows = pass(m, w, h, &|y, x| y * w + x);
    pass(&rows, h, w, &|x, y| y * w + x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_fov_thresholds_red_and_erodes_by_the_radius() {
        // 9×9, red 200 in the 5×5 centre block (rows/cols 2..7), 10 elsewhere; green is bright
        // everywhere and must not count.
        let (h, w) = (9, 9);
        let mut px = vec![0u8; h * w * 3];
        for y in 0..h {
            for x in 0..w {
                let o = (y * w + x) * 3;
                px[o] = if (2..7).contains(&y) && (2..7).contains(&x) { 200 } else { 10 };
                px[o + 1] = 250;
            }
        }
        let no_erosion = derive(&px, h, w, 3, RedThreshold { red_above: 35, erode: 0 });
        assert_eq!(no_erosion.iter().filter(|&&b| b).count(), 25);
        let eroded = derive(&px, h, w, 3, RedThreshold { red_above: 35, erode: 1 });
        let inside: Vec<(usize, usize)> = (0..h * w).filter(|&i| eroded[i]).map(|i| (i / w, i % w)).collect();
        assert_eq!(inside.len(), 9, "a 5×5 block eroded by 1 is 3×3: {inside:?}");
        assert!(inside.iter().all(|&(y, x)| (3..6).contains(&y) && (3..6).contains(&x)));
        // A region touching the border loses its border pixels too.
        let all = derive(&vec![200u8; 4 * 4 * 3], 4, 4, 3, RedThreshold { red_above: 35, erode: 1 });
        assert_eq!(all.iter().filter(|&&b| b).count(), 4);
    }

    #[test]
    fn labels_outside_become_the_ignore_index() {
        let mut l = vec![0, 1, 1, 0];
        apply(&mut l, &[true, false, true, false], 255);
        assert_eq!(l, vec![0, 255, 1, 255]);
    }
}
