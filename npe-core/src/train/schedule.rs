//! Learning-rate schedules, per optimisation step: constant, multistep (by epoch), cosine
//! (per step, as PyTorch's CosineAnnealingLR stepped every iteration), with an optional linear
//! warm-up.

use crate::spec::{ScheduleKind, ScheduleSpec};

/// A schedule bound to a run's length.
#[derive(Clone, Debug)]
pub struct Schedule {
    base: f64,
    spec: ScheduleSpec,
    steps_per_epoch: usize,
    total_steps: usize,
}

impl Schedule {
    /// `base` lr, `epochs` of `steps_per_epoch` steps.
    pub fn new(base: f64, spec: &ScheduleSpec, steps_per_epoch: usize, epochs: usize) -> Self {
        Self {
            base,
            spec: spec.clone(),
            steps_per_epoch: steps_per_epoch.max(1),
            total_steps: (steps_per_epoch * epochs).max(1),
        }
    }

    fn warmup_steps(&self) -> usize {
        (self.spec.warmup_epochs * self.steps_per_epoch as f64).round() as usize
    }

    /// The learning rate of global step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        let warm = self.warmup_steps();
        if step < warm {
            return self.base * (step + 1) as f64 / warm as f64;
        }
        match self.spec.kind {
            ScheduleKind::Constant => self.base,
            ScheduleKind::Multistep => {
                let epoch = step / self.steps_per_epoch;
                let passed = self.spec.milestones.iter().filter(|&&m| epoch >= m).count();
                self.base * self.spec.gamma.powi(passed as i32)
            }
            ScheduleKind::Cosine => {
                let span = (self.total_steps - warm).max(1) as f64;
                let t = (step - warm) as f64 / span;
                let min = self.spec.min_lr;
                min + (self.base - min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ScheduleKind) -> ScheduleSpec {
        ScheduleSpec { kind, ..Default::default() }
    }

    #[test]
    fn multistep_by_epoch() {
        let s = Schedule::new(0.1, &ScheduleSpec { milestones: vec![2, 3], ..spec(ScheduleKind::Multistep) }, 10, 4);
        let lrs: Vec<f64> = [0, 19, 20, 29, 30, 39].iter().map(|&t| s.lr(t)).collect();
        let want = [0.1, 0.1, 0.01, 0.01, 0.001, 0.001];
        for (a, b) in lrs.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{lrs:?}");
        }
    }

    #[test]
    fn cosine_matches_pytorch_per_step() {
        // CosineAnnealingLR(T_max = 100) stepped once per iteration.
        let s = Schedule::new(0.05, &spec(ScheduleKind::Cosine), 10, 10);
        assert!((s.lr(0) - 0.05).abs() < 1e-15);
        assert!((s.lr(50) - 0.025).abs() < 1e-12);
        assert!((s.lr(25) - 0.05 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos())).abs() < 1e-12);
    }

    #[test]
    fn linear_warmup_then_schedule() {
        let s = Schedule::new(0.1, &ScheduleSpec { warmup_epochs: 1.0, ..spec(ScheduleKind::Constant) }, 4, 3);
        assert_eq!([s.lr(0), s.lr(1), s.lr(3), s.lr(4)], [0.025, 0.05, 0.1, 0.1]);
    }
}
