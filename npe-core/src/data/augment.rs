//! Per-sample transforms: resize (bilinear) and centre crop for large images, random crop with
//! zero padding and horizontal flip for training, and per-channel normalisation, written straight
//! into the batch buffer as planar floats. Label maps get the same geometry (nearest neighbour,
//! padding = ignore).

use crate::rng::Rng;
use crate::spec::{AugmentSpec, CropSpec};

/// An 8-bit interleaved image (and optional label map of the same size).
#[derive(Clone, Debug)]
pub struct RawImage {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// `h·w·c` bytes, HWC.
    pub pixels: Vec<u8>,
    /// `h·w` labels (segmentation).
    pub mask: Option<Vec<u8>>,
}

/// The transform of one split.
#[derive(Clone, Debug)]
pub struct Transform {
    resize: Option<usize>,
    center_crop: Option<usize>,
    random_crop: Option<CropSpec>,
    hflip: bool,
    /// `lut[c * 256 + v] = (v / 255 − mean[c]) / std[c]`.
    lut: Vec<f32>,
    channels: usize,
    /// Output (h, w).
    pub out: [usize; 2],
    ignore: u8,
}

impl Transform {
    /// The label written where there is none (padding, outside the field of view).
    pub fn ignore(&self) -> u8 {
        self.ignore
    }

    /// Training (`train = true`: random crop and flip) or test transform.
    pub fn new(aug: &AugmentSpec, train: bool, mean: &[f32], std: &[f32], out: [usize; 2], ignore: u8) -> Self {
        let channels = mean.len();
        let mut lut = vec![0f32; channels * 256];
        for c in 0..channels {
            for v in 0..256 {
                lut[c * 256 + v] = (v as f32 / 255.0 - mean[c]) / std[c];
            }
        }
        Self {
            resize: aug.resize,
            center_crop: aug.center_crop,
            random_crop: if train { aug.random_crop } else { None },
            hflip: train && aug.hflip,
            lut,
            channels,
            out,
            ignore,
        }
    }

    /// Resize and centre-crop (deterministic geometry, applied to train and test).
    fn prepare(&self, img: RawImage) -> RawImage {
        let mut img = img;
        if let Some(r) = self.resize {
            let (h, w) = if img.h <= img.w {
                (r, (img.w * r).div_ceil(img.h).max(r))
            } else {
                ((img.h * r).div_ceil(img.w).max(r), r)
            };
            if (h, w) != (img.h, img.w) {
                img = resize(&img, h, w);
            }
        }
        if let Some(c) = self.center_crop {
            let (y0, x0) = ((img.h.saturating_sub(c)) / 2, (img.w.saturating_sub(c)) / 2);
            img = crop(&img, y0 as isize, x0 as isize, c, c, self.ignore);
        }
        img
    }

    /// Transform one sample into `out` (`c·h·w` floats, planar) and `out_mask` (`h·w`).
    pub fn apply(&self, img: RawImage, rng: &mut Rng, out: &mut [f32], out_mask: Option<&mut [i64]>) {
        let img = self.prepare(img);
        let [oh, ow] = self.out;
        // Crop window origin in the (unpadded) image; may be negative or overhang (= padding).
        let (y0, x0) = match self.random_crop {
            Some(cs) => {
                let span_y = img.h + 2 * cs.padding - cs.size;
                let span_x = img.w + 2 * cs.padding - cs.size;
                let dy = rng.below(span_y as u64 + 1) as isize;
                let dx = rng.below(span_x as u64 + 1) as isize;
                (dy - cs.padding as isize, dx - cs.padding as isize)
            }
            None => (((img.h as isize - oh as isize) / 2), ((img.w as isize - ow as isize) / 2)),
        };
        let flip = self.hflip && rng.coin();
        let c = img.c.min(self.channels);
        debug_assert_eq!(out.len(), self.channels * oh * ow);
        for y in 0..oh {
            let sy = y0 + y as isize;
            let row_ok = sy >= 0 && (sy as usize) < img.h;
            for x in 0..ow {
                let sx = if flip { x0 + (ow - 1 - x) as isize } else { x0 + x as isize };
                let inside = row_ok && sx >= 0 && (sx as usize) < img.w;
                let src = if inside { (sy as usize * img.w + sx as usize) * img.c } else { 0 };
                for ch in 0..self.channels {
                    let v = if inside { img.pixels[src + ch.min(c - 1)] } else { 0 };
                    // Zero padding is black before normalisation, as torchvision pads the PIL image.
                    out[ch * oh * ow + y * ow + x] = self.lut[ch * 256 + v as usize];
                }
            }
        }
        if let (Some(m), Some(om)) = (img.mask.as_ref(), out_mask) {
            for y in 0..oh {
                let sy = y0 + y as isize;
                for x in 0..ow {
                    let sx = if flip { x0 + (ow - 1 - x) as isize } else { x0 + x as isize };
                    let inside = sy >= 0 && (sy as usize) < img.h && sx >= 0 && (sx as usize) < img.w;
                    om[y * ow + x] =
                        if inside { m[sy as usize * img.w + sx as usize] as i64 } else { self.ignore as i64 };
                }
            }
        }
    }
}

/// Bilinear resize of pixels (align_corners = false); nearest neighbour for the mask.
pub fn resize(img: &RawImage, nh: usize, nw: usize) -> RawImage {
    let (h, w, c) = (img.h, img.w, img.c);
    let mut out = vec![0u8; nh * nw * c];
    let sy = h as f32 / nh as f32;
    let sx = w as f32 / nw as f32;
    for y in 0..nh {
        let fy = ((y as f32 + 0.5) * sy - 0.5).max(0.0);
        let y0 = (fy as usize).min(h - 1);
        let y1 = (y0 + 1).min(h - 1);
        let wy = fy - y0 as f32;
        for x in 0..nw {
            let fx = ((x as f32 + 0.5) * sx - 0.5).max(0.0);
            let x0 = (fx as usize).min(w - 1);
            let x1 = (x0 + 1).min(w - 1);
            let wx = fx - x0 as f32;
            for ch in 0..c {
                let p = |yy: usize, xx: usize| img.pixels[(yy * w + xx) * c + ch] as f32;
                let v = (1.0 - wy) * ((1.0 - wx) * p(y0, x0) + wx * p(y0, x1))
                    + wy * ((1.0 - wx) * p(y1, x0) + wx * p(y1, x1));
                out[(y * nw + x) * c + ch] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    let mask = img.mask.as_ref().map(|m| {
        let mut o = vec![0u8; nh * nw];
        for y in 0..nh {
            let yy = (((y as f32 + 0.5) * sy) as usize).min(h - 1);
            for x in 0..nw {
                let xx = (((x as f32 + 0.5) * sx) as usize).min(w - 1);
                o[y * nw + x] = m[yy * w + xx];
            }
        }
        o
    });
    RawImage { h: nh, w: nw, c, pixels: out, mask }
}

/// Crop `ch × cw` at (y0, x0); outside the image pixels are 0 and labels `ignore`.
fn crop(img: &RawImage, y0: isize, x0: isize, ch: usize, cw: usize, ignore: u8) -> RawImage {
    let c = img.c;
    let mut out = vec![0u8; ch * cw * c];
    let mut mask = img.mask.as_ref().map(|_| vec![ignore; ch * cw]);
    for y in 0..ch {
        let sy = y0 + y as isize;
        if sy < 0 || sy as usize >= img.h {
            continue;
        }
        for x in 0..cw {
            let sx = x0 + x as isize;
            if sx < 0 || sx as usize >= img.w {
                continue;
            }
            let s = sy as usize * img.w + sx as usize;
            out[(y * cw + x) * c..(y * cw + x + 1) * c].copy_from_slice(&img.pixels[s * c..(s + 1) * c]);
            if let (Some(m), Some(src)) = (mask.as_mut(), img.mask.as_ref()) {
                m[y * cw + x] = src[s];
            }
        }
    }
    RawImage { h: ch, w: cw, c, pixels: out, mask }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> RawImage {
        RawImage {
            h,
            w,
            c: 1,
            pixels: (0..h * w).map(|i| i as u8).collect(),
            mask: Some((0..h * w).map(|i| (i % 7) as u8).collect()),
        }
    }

    #[test]
    fn normalises_with_mean_and_std() {
        let t = Transform::new(&AugmentSpec::default(), false, &[0.5], &[0.25], [2, 2], 255);
        let img = RawImage { h: 2, w: 2, c: 1, pixels: vec![0, 255, 51, 102], mask: None };
        let mut out = vec![0f32; 4];
        t.apply(img, &mut Rng::new(0), &mut out, None);
        for (o, e) in out.iter().zip([-2.0f32, 2.0, -1.2, -0.4]) {
            assert!((o - e).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn padded_crop_and_flip_move_pixels_and_masks_together() {
        let aug =
            AugmentSpec { random_crop: Some(CropSpec { size: 4, padding: 2 }), hflip: true, ..Default::default() };
        let t = Transform::new(&aug, true, &[0.0], &[1.0 / 255.0], [4, 4], 255);
        let mut seen_shift = false;
        for seed in 0..50 {
            let img = ramp(4, 4);
            let mut out = vec![0f32; 16];
            let mut mask = vec![0i64; 16];
            t.apply(img.clone(), &mut Rng::new(seed), &mut out, Some(&mut mask));
            for i in 0..16 {
                // Each output pixel is either padding (0 / ignore) or a source pixel with its own label.
                let v = out[i].round() as usize;
                if mask[i] == 255 {
                    assert_eq!(v, 0);
                } else {
                    assert_eq!(mask[i] as usize, v % 7, "pixel and label moved apart");
                }
            }
            seen_shift |= out[0] as usize != 0 || mask[0] == 255;
        }
        assert!(seen_shift);
    }

    #[test]
    fn same_rng_same_result() {
        let aug =
            AugmentSpec { random_crop: Some(CropSpec { size: 3, padding: 1 }), hflip: true, ..Default::default() };
        let t = Transform::new(&aug, true, &[0.0], &[1.0], [3, 3], 255);
        let run = |s| {
            let mut o = vec![0f32; 9];
            t.apply(ramp(3, 3), &mut Rng::new(s), &mut o, None);
            o
        };
        assert_eq!(run(9), run(9));
    }

    #[test]
    fn resize_then_center_crop() {
        let aug = AugmentSpec { resize: Some(4), center_crop: Some(4), ..Default::default() };
        let t = Transform::new(&aug, false, &[0.0], &[1.0 / 255.0], [4, 4], 255);
        let img = RawImage { h: 8, w: 16, c: 1, pixels: vec![200; 128], mask: None };
        let mut out = vec![0f32; 16];
        t.apply(img, &mut Rng::new(0), &mut out, None);
        assert!(out.iter().all(|&v| (v - 200.0).abs() < 1e-3));
    }
}
