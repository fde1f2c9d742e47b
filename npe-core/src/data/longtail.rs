//! Long-tailed sampling of a training split: class-count profiles and seeded selection.

use super::dataset::Split;
use super::error::{DataError, Result};
use crate::rng::Rng;
use crate::spec::{LongTailSpec, Profile};

/// Per-class target counts. Exponential: `n_i = floor(n_max · (1/IF)^(i/(C−1)))` (the formula of
/// the LDAM / logit-adjustment code bases); step: the last `round(C·fraction)` classes get
/// `floor(n_max / IF)`, the others `n_max`.
pub fn profile_counts(
    profile: Profile,
    n_max: usize,
    classes: usize,
    imbalance: f64,
    step_fraction: f64,
) -> Vec<usize> {
    // A relative tolerance keeps exact products (5000 · 0.01 = 50) from flooring to 49.
    let floor = |x: f64| (x * (1.0 + 1e-12)).floor() as usize;
    match profile {
        Profile::None => vec![n_max; classes],
        Profile::Exponential => (0..classes)
            .map(|i| {
                let t = if classes > 1 { i as f64 / (classes - 1) as f64 } else { 0.0 };
                floor(n_max as f64 * (1.0 / imbalance).powf(t))
            })
            .collect(),
        Profile::Step => {
            let minority = (classes as f64 * step_fraction).round() as usize;
            (0..classes)
                .map(|i| if i >= classes - minority { floor(n_max as f64 / imbalance) } else { n_max })
                .collect()
        }
    }
}

/// Select a long-tailed subset of `split` (classification). Returns the subset and its counts.
/// Which samples of a class are kept is decided by a seeded shuffle of that class.
pub fn apply(split: &Split, classes: usize, spec: &LongTailSpec, seed: u64) -> Result<(Split, Vec<usize>)> {
    let available = split.class_counts(classes);
    if spec.profile == Profile::None {
        return Ok((split.clone(), available));
    }
    let min_avail = *available.iter().min().unwrap_or(&0);
    let n_max = spec.max_per_class.unwrap_or(min_avail);
    let targets = profile_counts(spec.profile, n_max, classes, spec.imbalance_factor, spec.step_fraction);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for i in 0..split.len() {
        by_class[split.label(i) as usize].push(i);
    }
    let mut keep = Vec::new();
    for (c, positions) in by_class.iter_mut().enumerate() {
        if targets[c] > positions.len() {
            return Err(DataError::Invalid(format!(
                "long tail: class {c} needs {} training samples but has {}; lower `data.long_tail.max_per_class`",
                targets[c],
                positions.len()
            )));
        }
        if targets[c] == 0 {
            return Err(DataError::Invalid(format!(
                "long tail: class {c} would get 0 samples (n_max {n_max}, IF {}); raise `max_per_class` or lower the imbalance factor",
                spec.imbalance_factor
            )));
        }
        Rng::stream(seed, &[0x1d7a11, c as u64]).shuffle(positions);
        let mut chosen = positions[..targets[c]].to_vec();
        chosen.sort_unstable();
        keep.extend(chosen);
    }
    keep.sort_unstable();
    Ok((split.subset(&keep), targets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar10_if100_counts_are_exact() {
        assert_eq!(
            profile_counts(Profile::Exponential, 5000, 10, 100.0, 0.5),
            vec![5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
        );
    }

    #[test]
    fn cifar100_and_step_profiles() {
        let c = profile_counts(Profile::Exponential, 500, 100, 100.0, 0.5);
        assert_eq!((c[0], c[99], c.iter().sum::<usize>()), (500, 5, 10847));
        assert_eq!(
            profile_counts(Profile::Step, 5000, 10, 10.0, 0.5),
            vec![5000, 5000, 5000, 5000, 5000, 500, 500, 500, 500, 500]
        );
    }

    #[test]
    fn selection_is_seeded_and_exact() {
        use super::super::dataset::{DenseImages, Pixels};
        let n = 300;
        let pixels = Pixels::Dense(DenseImages {
            h: 1,
            w: 1,
            c: 1,
            data: std::sync::Arc::new((0..n).map(|i| i as u8).collect()),
        });
        let split = Split::new(pixels, (0..n).map(|i| (i % 3) as u32).collect(), None);
        let spec = LongTailSpec {
            profile: Profile::Exponential,
            imbalance_factor: 10.0,
            step_fraction: 0.5,
            max_per_class: None,
        };
        let (a, counts) = apply(&split, 3, &spec, 1).unwrap();
        assert_eq!(counts, vec![100, 31, 10]);
        assert_eq!(a.class_counts(3), counts);
        let (b, _) = apply(&split, 3, &spec, 1).unwrap();
        assert_eq!(a.index, b.index);
        let (c, _) = apply(&split, 3, &spec, 2).unwrap();
        assert_ne!(a.index, c.index);
        let too_many = LongTailSpec { max_per_class: Some(101), ..spec };
        assert!(apply(&split, 3, &too_many, 1).unwrap_err().to_string().contains("class 0 needs 101"));
    }
}
