//! Host-side statistics of unlabelled training images that adjusters calibrate on
//! (`npe_la`'s `readout` and `scale: auto`, `posthoc_la`'s `prior: predicted`).

use crate::backend::Request;

/// Per-class sums over training images: a `ClassSums` request's `[3, C]` answers, added up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClassStats {
    /// `Σ w_k h̄_k`.
    pub weighted: Vec<f64>,
    /// `Σ w_k`.
    pub weight: Vec<f64>,
    /// Images (pixels) counted.
    pub count: Vec<f64>,
}

impl ClassStats {
    /// Add one `[3, C]` answer.
    pub fn add(&mut self, rows: &[f32]) {
        let c = rows.len() / 3;
        for (dst, src) in [&mut self.weighted, &mut self.weight, &mut self.count].into_iter().zip(rows.chunks(c)) {
            dst.resize(c, 0.0);
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += *s as f64);
        }
    }

    /// `Σ w h̄ / Σ w` per class: the (weighted) mean PEM output.
    pub fn mean(&self) -> Vec<f64> {
        self.weighted.iter().zip(&self.weight).map(|(a, w)| a / w.max(1e-30)).collect()
    }

    /// `Σ w / count` per class: with softmax weights, the classifier's mean posterior over the
    /// images, i.e. the class prior it implies (at a stationary point of cross-entropy with a
    /// bias, exactly the training prior).
    pub fn share(&self) -> Vec<f64> {
        self.weight.iter().zip(&self.count).map(|(w, n)| w / n.max(1e-30)).collect()
    }
}

/// The statistics of each request, as evaluation gathered them.
pub type StatsOf<'a> = &'a dyn Fn(&Request) -> ClassStats;

/// Least-squares slope of `y` on `x` (0 when `x` is constant).
pub fn slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().max(1) as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    if sxx > 0.0 { sxy / sxx } else { 0.0 }
}

/// `ln` with a floor, for priors.
pub fn ln(p: &[f64]) -> Vec<f64> {
    p.iter().map(|v| v.max(1e-12).ln()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_add_up_and_give_means_and_shares() {
        let mut s = ClassStats::default();
        s.add(&[2.0, 3.0, 1.0, 1.0, 4.0, 4.0]);
        s.add(&[0.0, 3.0, 1.0, 2.0, 4.0, 4.0]);
        assert_eq!(s.mean(), vec![1.0, 2.0]);
        assert_eq!(s.share(), vec![0.25, 0.375]);
    }

    #[test]
    fn slope_of_a_line_and_of_a_constant() {
        assert!((slope(&[0.0, 1.0, 2.0], &[1.0, 3.0, 5.0]) - 2.0).abs() < 1e-12);
        assert_eq!(slope(&[1.0, 1.0], &[0.0, 5.0]), 0.0);
    }
}
