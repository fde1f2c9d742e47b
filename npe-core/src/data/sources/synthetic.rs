//! `source: synthetic`, the built-in generated data set: each class is a smooth random
//! prototype image; a sample is its prototype shifted by up to two pixels plus Gaussian noise.
//! Classes overlap more as `noise` grows, so a long tail visibly hurts the rare classes.

use crate::data::dataset::{DenseImages, Pixels, Provenance, Split};
use crate::data::error::Result;
use crate::data::source::{ClassSplits, Loaded, Located, Native, SourceDef};
use crate::rng::Rng;
use crate::spec::DataSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Most memory generated data may take.
const MAX_BYTES: f64 = 16.0 * (1u64 << 30) as f64;

fn default_classes() -> usize {
    10
}
fn default_size() -> usize {
    12
}
fn default_per_class() -> usize {
    1000
}
fn default_test() -> usize {
    200
}
fn default_noise() -> f32 {
    1.0
}
fn default_one() -> usize {
    1
}

/// `data.synthetic`: the generated images.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    /// Classes. Default 10.
    #[serde(default = "default_classes")]
    pub classes: usize,
    /// Image side. Default 12.
    #[serde(default = "default_size")]
    pub size: usize,
    /// Channels. Default 1.
    #[serde(default = "default_one")]
    pub channels: usize,
    /// Training images per class before long-tail sampling. Default 1000.
    #[serde(default = "default_per_class")]
    pub per_class: usize,
    /// Test images per class. Default 200.
    #[serde(default = "default_test")]
    pub test_per_class: usize,
    /// Noise standard deviation relative to the prototype contrast. Default 1.0.
    #[serde(default = "default_noise")]
    pub noise: f32,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            classes: default_classes(),
            size: default_size(),
            channels: 1,
            per_class: default_per_class(),
            test_per_class: default_test(),
            noise: default_noise(),
        }
    }
}

/// The source.
pub struct Synthetic;

impl SourceDef for Synthetic {
    const NAME: &'static str = "synthetic";
    const SUMMARY: &'static str = "generated in code: noisy class prototypes (no download; quickstart.yaml)";
    const HAS_OPTIONS: bool = true;
    const NORMALIZATION: (&'static [f32], &'static [f32]) = (&[0.5], &[0.25]);
    type Options = SyntheticSpec;

    fn native(s: &SyntheticSpec, _spec: &DataSpec) -> std::result::Result<Native, Located> {
        Ok(Native { channels: s.channels, size: Some([s.size, s.size]), classes: Some(s.classes) })
    }

    fn check(s: &SyntheticSpec, _spec: &DataSpec, classes: usize) -> std::result::Result<(), Located> {
        if !(s.noise.is_finite() && s.noise >= 0.0) {
            return Err(("data.synthetic.noise".into(), format!("must be a finite number ≥ 0, got {}", s.noise)));
        }
        // Generated in memory as float32: refuse what would not fit rather than abort.
        let pixels = (s.channels * s.size * s.size) as f64;
        let bytes = classes as f64 * (s.per_class as f64 + s.test_per_class as f64) * pixels * 4.0;
        if bytes > MAX_BYTES {
            let gib = |b: f64| format!("{:.1} GiB", b / (1u64 << 30) as f64);
            return Err((
                "data.synthetic.per_class".into(),
                format!(
                    "{classes} classes × ({} + {}) images of {}×{}×{} would take {} in memory (at most {})",
                    s.per_class,
                    s.test_per_class,
                    s.channels,
                    s.size,
                    s.size,
                    gib(bytes),
                    gib(MAX_BYTES)
                ),
            ));
        }
        if s.per_class == 0 || s.test_per_class == 0 {
            let field = if s.per_class == 0 { "per_class" } else { "test_per_class" };
            return Err((
                format!("data.synthetic.{field}"),
                "must be at least 1 (every class needs images to train and test on)".into(),
            ));
        }
        Ok(())
    }

    fn default_root(_: &SyntheticSpec, _spec: &DataSpec) -> Result<PathBuf> {
        Ok(PathBuf::new())
    }

    fn load(s: &SyntheticSpec, _spec: &DataSpec, _root: &Path, seed: u64) -> Result<Loaded> {
        let (train, test) = generate(s, seed);
        Ok(Loaded::Classes(ClassSplits {
            name: "synthetic".into(),
            origin: "generated in code".into(),
            provenance: Provenance::Synthetic,
            classes: (0..s.classes).map(|i| format!("class_{i}")).collect(),
            train,
            test,
            channels: s.channels,
        }))
    }
}

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
