//! The built-in generated data set (`source: synthetic`): each class is a smooth random
//! prototype image; a sample is its prototype shifted by up to two pixels plus Gaussian noise.
//! Classes overlap more as `noise` grows, so a long tail visibly hurts the rare classes.

use super::dataset::{DenseImages, Pixels, Split};
use crate::rng::Rng;
use crate::spec::SyntheticSpec;
use std::sync::Arc;

fn prototypes(spec: &SyntheticSpec, seed: u64) -> Vec<Vec<f32>> {
    let (s, c) = (spec.size, spec.channels);
    (0..spec.classes)
        .map(|k| {
            let mut r = Rng::stream(seed, &[0x5e7, k as u64]);
            let mut img = vec![0f32; s * s * c];
            for ch in 0..c {
                for _ in 0..3 {
                    let (cy, cx) = (r.next_f64() * s as f64, r.next_f64() * s as f64);
                    let sigma = (0.12 + 0.18 * r.next_f64()) * s as f64;
                    let amp = if r.coin() { 1.0 } else { -1.0 };
                    for y in 0..s {
                        for x in 0..s {
                            let d2 = (y as f64 - cy).powi(2) + (x as f64 - cx).powi(2);
                            img[(y * s + x) * c + ch] += (amp * (-d2 / (2.0 * sigma * sigma)).exp()) as f32;
                        }
                    }
                }
            }
            // Scale to zero mean, unit max-abs.
            let mean = img.iter().sum::<f32>() / img.len() as f32;
            let max = img.iter().map(|v| (v - mean).abs()).fold(1e-6f32, f32::max);
            img.iter().map(|v| (v - mean) / max).collect()
        })
        .collect()
}

fn render(spec: &SyntheticSpec, protos: &[Vec<f32>], per_class: usize, seed: u64, tag: u64) -> Split {
    let (s, c) = (spec.size, spec.channels);
    let n = per_class * spec.classes;
    let mut data = vec![0u8; n * s * s * c];
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % spec.classes;
        labels.push(k as u32);
        let mut r = Rng::stream(seed, &[tag, i as u64]);
        let (dy, dx) = (r.below(5) as isize - 2, r.below(5) as isize - 2);
        let out = &mut data[i * s * s * c..(i + 1) * s * s * c];
        for y in 0..s {
            for x in 0..s {
                let (sy, sx) = (
                    (y as isize - dy).clamp(0, s as isize - 1) as usize,
                    (x as isize - dx).clamp(0, s as isize - 1) as usize,
                );
                for ch in 0..c {
                    let v = protos[k][(sy * s + sx) * c + ch] + spec.noise * r.normal() as f32;
                    out[(y * s + x) * c + ch] = (127.5 + 60.0 * v).clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    Split::new(Pixels::Dense(DenseImages { h: s, w: s, c, data: Arc::new(data) }), labels, None)
}

/// Generate (train, test) splits, balanced, deterministic in `seed`.
pub fn generate(spec: &SyntheticSpec, seed: u64) -> (Split, Split) {
    let protos = prototypes(spec, seed);
    (render(spec, &protos, spec.per_class, seed, 0x7a1), render(spec, &protos, spec.test_per_class, seed, 0x7e5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_balanced() {
        let spec = SyntheticSpec { per_class: 5, test_per_class: 2, ..Default::default() };
        let (a, t) = generate(&spec, 3);
        let (b, _) = generate(&spec, 3);
        let (c, _) = generate(&spec, 4);
        let bytes = |s: &Split| match &s.pixels {
            Pixels::Dense(d) => d.data.clone(),
            _ => unreachable!(),
        };
        assert_eq!(bytes(&a), bytes(&b));
        assert_ne!(bytes(&a), bytes(&c));
        assert_eq!(a.class_counts(10), vec![5; 10]);
        assert_eq!(t.class_counts(10), vec![2; 10]);
    }
}
