//! Metrics computed on the host: accuracy (mean per class, groups), the prior estimate's fit,
//! segmentation IoU.

use serde::{Deserialize, Serialize};

/// Accuracy of one output on the test split.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Accuracy {
    /// Mean of per-class accuracies (the balanced-test metric), in [0, 1].
    pub mean_per_class: f64,
    /// Fraction of all samples right.
    pub overall: f64,
    /// Per-class accuracy.
    pub per_class: Vec<f64>,
    /// Mean per-class accuracy over the head / medium / tail classes (None if a group is empty).
    pub head: Option<f64>,
    /// See `head`.
    pub medium: Option<f64>,
    /// See `head`.
    pub tail: Option<f64>,
}

/// Running confusion counts for classification.
#[derive(Clone, Debug)]
pub struct Confusion {
    classes: usize,
    /// Per true class: samples (pixels) of it, and how many were predicted as it.
    truth: Vec<u64>,
    /// Per class: correct predictions (the confusion matrix's diagonal).
    hits: Vec<u64>,
    /// Per class: predictions of it, right or wrong (the column sums).
    predicted: Vec<u64>,
}

impl Confusion {
    /// Empty counts over `classes`: O(C) memory, not the C×C matrix (70,000 classes took
    /// 39 GB), since every metric here needs only its diagonal and margins.
    pub fn new(classes: usize) -> Self {
        Self { classes, truth: vec![0; classes], hits: vec![0; classes], predicted: vec![0; classes] }
    }

    /// The counts, flat: per class its samples, its hits, its predictions (what ranks sum).
    pub fn counts(&self) -> Vec<u64> {
        [&self.truth, &self.hits, &self.predicted].into_iter().flatten().copied().collect()
    }

    /// Add counts laid out as [`Confusion::counts`] gives them.
    pub fn add_counts(&mut self, counts: &[u64]) {
        let c = self.classes;
        for (dst, src) in [&mut self.truth, &mut self.hits, &mut self.predicted].into_iter().zip(counts.chunks(c)) {
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
        }
    }

    /// Add predictions (ignoring labels outside `0..C`, e.g. ignored pixels).
    pub fn add(&mut self, pred: &[f32], labels: &[i64]) {
        for (&p, &l) in pred.iter().zip(labels) {
            if l >= 0 && (l as usize) < self.classes {
                let (l, p) = (l as usize, (p as usize).min(self.classes - 1));
                self.truth[l] += 1;
                self.predicted[p] += 1;
                self.hits[l] += (l == p) as u64;
            }
        }
    }

    /// Accuracy metrics with class groups (0 head, 1 medium, 2 tail).
    pub fn accuracy(&self, groups: &[usize]) -> Accuracy {
        let c = self.classes;
        let mut per_class = vec![0.0; c];
        let (mut right, mut total) = (0u64, 0u64);
        for k in 0..c {
            let n = self.truth[k];
            per_class[k] = if n > 0 { self.hits[k] as f64 / n as f64 } else { 0.0 };
            right += self.hits[k];
            total += n;
        }
        let group = |g: usize| {
            let v: Vec<f64> = (0..c).filter(|&k| groups.get(k) == Some(&g)).map(|k| per_class[k]).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let (head, medium, tail) = (group(0), group(1), group(2));
        Accuracy {
            mean_per_class: per_class.iter().sum::<f64>() / c as f64,
            overall: right as f64 / total.max(1) as f64,
            per_class,
            head,
            medium,
            tail,
        }
    }

    /// Segmentation metrics; `tail[k]` marks tail classes.
    pub fn segmentation(&self, tail: &[bool]) -> SegMetrics {
        let c = self.classes;
        let mut iou = vec![0.0; c];
        let mut acc = vec![0.0; c];
        let mut present = vec![false; c];
        let (mut right, mut total) = (0u64, 0u64);
        for k in 0..c {
            let (tp, gt, pred) = (self.hits[k], self.truth[k], self.predicted[k]);
            let union = gt + pred - tp;
            present[k] = gt > 0;
            iou[k] = if union > 0 { tp as f64 / union as f64 } else { 0.0 };
            acc[k] = if gt > 0 { tp as f64 / gt as f64 } else { 0.0 };
            right += tp;
            total += gt;
        }
        let mean_over = |v: &[f64], keep: &dyn Fn(usize) -> bool| {
            let xs: Vec<f64> = (0..c).filter(|&k| present[k] && keep(k)).map(|k| v[k]).collect();
            (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
        };
        let dice = (0..c)
            .map(|k| {
                let (tp, gt, pred) = (self.hits[k], self.truth[k], self.predicted[k]);
                if gt + pred > 0 { 2.0 * tp as f64 / (gt + pred) as f64 } else { 0.0 }
            })
            .collect();
        SegMetrics {
            miou: mean_over(&iou, &|_| true).unwrap_or(0.0),
            tail_miou: mean_over(&iou, &|k| tail.get(k).copied().unwrap_or(false)),
            mean_pixel_accuracy: mean_over(&acc, &|_| true).unwrap_or(0.0),
            pixel_accuracy: right as f64 / total.max(1) as f64,
            per_class_iou: iou,
            per_class_dice: dice,
            binary: (c == 2).then(|| self.binary()),
        }
    }

    /// Two classes, class 1 the foreground (vessels): the counts' Dice, sensitivity,
    /// specificity and accuracy (AUC comes from the probabilities: [`ScoreHistogram`]).
    fn binary(&self) -> BinaryMetrics {
        let tp = self.hits[1] as f64;
        let tn = self.hits[0] as f64;
        let fn_ = (self.truth[1] - self.hits[1]) as f64;
        let fp = (self.predicted[1] - self.hits[1]) as f64;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        BinaryMetrics {
            dice: ratio(2.0 * tp, 2.0 * tp + fp + fn_),
            sensitivity: ratio(tp, tp + fn_),
            specificity: ratio(tn, tn + fp),
            accuracy: ratio(tp + tn, tp + tn + fp + fn_),
            auc: None,
        }
    }
}

/// The foreground class's metrics of a two-class segmentation (retinal vessels), over the
/// labelled pixels (inside the field of view, where the source has one).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BinaryMetrics {
    /// Dice = F1 = 2TP / (2TP + FP + FN).
    pub dice: f64,
    /// Sensitivity (recall) TP / (TP + FN).
    pub sensitivity: f64,
    /// Specificity TN / (TN + FP).
    pub specificity: f64,
    /// (TP + TN) / all.
    pub accuracy: f64,
    /// Area under the ROC curve of the foreground probability (None without probabilities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auc: Option<f64>,
}

/// A streaming histogram of the foreground probability of positive and negative pixels, from
/// which the ROC AUC follows in O(bins) memory: pairs in one bin count as ties (half), so the
/// error is at most the share of pairs sharing a bin (bins of 1/65,536).
#[derive(Clone, Debug)]
pub struct ScoreHistogram {
    positive: Vec<u64>,
    negative: Vec<u64>,
}

impl Default for ScoreHistogram {
    fn default() -> Self {
        Self { positive: vec![0; Self::BINS], negative: vec![0; Self::BINS] }
    }
}

impl ScoreHistogram {
    const BINS: usize = 1 << 16;

    /// Words in [`ScoreHistogram::counts`].
    pub const COUNTS: usize = 2 * Self::BINS;

    /// The bins, flat: positives then negatives (what ranks sum).
    pub fn counts(&self) -> Vec<u64> {
        self.positive.iter().chain(&self.negative).copied().collect()
    }

    /// Add bins laid out as [`ScoreHistogram::counts`] gives them.
    pub fn add_counts(&mut self, counts: &[u64]) {
        let (p, n) = counts.split_at(Self::BINS);
        self.positive.iter_mut().zip(p).for_each(|(d, s)| *d += s);
        self.negative.iter_mut().zip(n).for_each(|(d, s)| *d += s);
    }

    /// Add one pixel: its foreground probability and whether it is foreground.
    pub fn add(&mut self, p: f64, foreground: bool) {
        let b = ((p.clamp(0.0, 1.0) * Self::BINS as f64) as usize).min(Self::BINS - 1);
        if foreground { self.positive[b] += 1 } else { self.negative[b] += 1 }
    }

    /// Add a `[N, 2, H, W]` logits map against its `N·H·W` labels (outside `0..2` ignored): the
    /// foreground probability is the softmax's, `σ(z₁ − z₀)`.
    pub fn add_logits(&mut self, logits: &[f32], shape: &[usize], labels: &[i64]) {
        let (n, hw) = (shape[0], shape[2..].iter().product::<usize>());
        for i in 0..n {
            for j in 0..hw {
                let l = labels[i * hw + j];
                if l == 0 || l == 1 {
                    let (z0, z1) = (logits[(i * 2) * hw + j] as f64, logits[(i * 2 + 1) * hw + j] as f64);
                    self.add(1.0 / (1.0 + (z0 - z1).exp()), l == 1);
                }
            }
        }
    }

    /// P(a positive scores above a negative) + ½ P(tie); None without both kinds of pixel.
    pub fn auc(&self) -> Option<f64> {
        let (pos, neg): (u64, u64) = (self.positive.iter().sum(), self.negative.iter().sum());
        if pos == 0 || neg == 0 {
            return None;
        }
        let (mut below, mut wins) = (0u64, 0f64);
        for b in 0..Self::BINS {
            wins += self.positive[b] as f64 * (below as f64 + 0.5 * self.negative[b] as f64);
            below += self.negative[b];
        }
        Some(wins / (pos as f64 * neg as f64))
    }
}

/// Segmentation metrics of one output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SegMetrics {
    /// Mean IoU over classes present in the test labels.
    pub miou: f64,
    /// Mean IoU over the tail classes present.
    pub tail_miou: Option<f64>,
    /// Mean per-class pixel accuracy.
    pub mean_pixel_accuracy: f64,
    /// Fraction of labelled pixels right.
    pub pixel_accuracy: f64,
    /// IoU of each class.
    pub per_class_iou: Vec<f64>,
    /// Dice (F1) of each class: 2TP / (2TP + FP + FN).
    #[serde(default)]
    pub per_class_dice: Vec<f64>,
    /// Two classes: the foreground's Dice, sensitivity, specificity, accuracy and AUC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<BinaryMetrics>,
}

/// How well the learned prior matches the true one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PriorFit {
    /// Pearson correlation of `−h̄` with `log prior`.
    pub r: f64,
    /// Spearman rank correlation of the same.
    pub spearman: f64,
    /// Least-squares slope of `−h̄` on `log prior` (1 = calibrated).
    pub slope: f64,
    /// KL(true ‖ estimate).
    pub kl: f64,
    /// The estimated prior `softmax(−h̄)`.
    pub estimate: Vec<f64>,
    /// The true prior.
    pub truth: Vec<f64>,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Pearson correlation.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 { 0.0 } else { sxy / (sxx * syy).sqrt() }
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for k in i..=j {
            r[idx[k]] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// Fit of the mean PEM output `h̄` (per class) against the true prior.
pub fn prior_fit(mean_h: &[f64], truth: &[f64]) -> PriorFit {
    let y: Vec<f64> = mean_h.iter().map(|h| -h).collect();
    let x: Vec<f64> = truth.iter().map(|p| p.max(1e-12).ln()).collect();
    let slope = crate::kind::calibrate::slope(&x, &y);
    let m = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = y.iter().map(|v| (v - m).exp()).sum();
    let estimate: Vec<f64> = y.iter().map(|v| (v - m).exp() / z).collect();
    let kl = truth.iter().zip(&estimate).filter(|(p, _)| **p > 0.0).map(|(p, q)| p * (p / q.max(1e-300)).ln()).sum();
    PriorFit { r: pearson(&x, &y), spearman: spearman(&x, &y), slope, kl, estimate, truth: truth.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_per_class_and_groups() {
        let mut c = Confusion::new(3);
        // class 0: 3/4 right, class 1: 1/2, class 2: 0/1
        c.add(&[0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0], &[0, 0, 0, 0, 1, 1, 2]);
        let a = c.accuracy(&[0, 1, 2]);
        assert_eq!(a.per_class, vec![0.75, 0.5, 0.0]);
        assert!((a.mean_per_class - 1.25 / 3.0).abs() < 1e-12);
        assert!((a.overall - 4.0 / 7.0).abs() < 1e-12);
        assert_eq!((a.head, a.medium, a.tail), (Some(0.75), Some(0.5), Some(0.0)));
    }

    #[test]
    fn perfect_prior_estimate() {
        let truth = [0.5, 0.3, 0.15, 0.05];
        // h = −log π + const
        let h: Vec<f64> = truth.iter().map(|p: &f64| -p.ln() + 3.0).collect();
        let f = prior_fit(&h, &truth);
        assert!((f.r - 1.0).abs() < 1e-12 && (f.slope - 1.0).abs() < 1e-12 && f.kl.abs() < 1e-12);
        assert!((f.spearman - 1.0).abs() < 1e-12);
        for (a, b) in f.estimate.iter().zip(truth) {
            assert!((a - b).abs() < 1e-12);
        }
        // A too-steep estimate has slope 2.
        let h2: Vec<f64> = truth.iter().map(|p: &f64| -2.0 * p.ln()).collect();
        assert!((prior_fit(&h2, &truth).slope - 2.0).abs() < 1e-12);
    }

    #[test]
    fn iou_ignores_unlabelled_pixels() {
        let mut c = Confusion::new(2);
        c.add(&[0.0, 1.0, 1.0, 0.0], &[0, 1, 0, 255]);
        let s = c.segmentation(&[false, true]);
        assert_eq!(s.per_class_iou, vec![0.5, 0.5]);
        assert_eq!(s.tail_miou, Some(0.5));
        assert!((s.pixel_accuracy - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn vessel_metrics_match_hand_counts() {
        // 10 labelled pixels: truth 1 1 1 1 0 0 0 0 0 0, prediction 1 1 1 0 1 0 0 0 0 0, and one
        // ignored (255) pixel predicted as vessel: TP 3, FN 1, FP 1, TN 5.
        let mut c = Confusion::new(2);
        c.add(&[1., 1., 1., 0., 1., 0., 0., 0., 0., 0., 1.], &[1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 255]);
        let s = c.segmentation(&[false, true]);
        let b = s.binary.unwrap();
        assert!((b.dice - 6.0 / 8.0).abs() < 1e-12, "2·3 / (2·3 + 1 + 1)");
        assert!((b.sensitivity - 0.75).abs() < 1e-12 && (b.specificity - 5.0 / 6.0).abs() < 1e-12);
        assert!((b.accuracy - 0.8).abs() < 1e-12);
        assert!((s.per_class_dice[1] - b.dice).abs() < 1e-12, "the foreground's Dice is class 1's");
        assert!((s.per_class_dice[0] - 10.0 / 12.0).abs() < 1e-12, "2·5 / (6 + 6)");
        assert!(Confusion::new(3).segmentation(&[false; 3]).binary.is_none(), "only for two classes");
    }

    #[test]
    fn auc_matches_the_pairwise_count() {
        // Positives score 0.9, 0.6, 0.4; negatives 0.5, 0.3, 0.2, 0.1: of 12 pairs the positive
        // wins 11 (0.4 loses to 0.5 only) → AUC 11/12.
        let mut h = ScoreHistogram::default();
        for p in [0.9, 0.6, 0.4] {
            h.add(p, true);
        }
        for p in [0.5, 0.3, 0.2, 0.1] {
            h.add(p, false);
        }
        assert!((h.auc().unwrap() - 11.0 / 12.0).abs() < 1e-12);
        // A tie counts half; all one class has no AUC.
        let mut t = ScoreHistogram::default();
        t.add(0.5, true);
        t.add(0.5, false);
        assert_eq!(t.auc(), Some(0.5));
        let mut one = ScoreHistogram::default();
        one.add(0.2, true);
        assert_eq!(one.auc(), None);
    }

    #[test]
    fn auc_from_logits_uses_the_softmax_of_the_foreground_and_skips_ignored_pixels() {
        // One 1×3 image: logits (z0, z1) per pixel; labels 1, 0, 255.
        let logits = [0.0, 2.0, 0.0, /* z1: */ 3.0, -1.0, 9.0];
        let mut h = ScoreHistogram::default();
        h.add_logits(&logits, &[1, 2, 1, 3], &[1, 0, 255]);
        // Pixel 0: σ(3) ≈ 0.95 (positive); pixel 1: σ(−3) ≈ 0.05 (negative); pixel 2 ignored.
        assert_eq!((h.positive.iter().sum::<u64>(), h.negative.iter().sum::<u64>()), (1, 1));
        assert_eq!(h.auc(), Some(1.0));
    }
}
