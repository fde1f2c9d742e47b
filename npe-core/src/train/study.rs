//! Studies: a grid of pipelines × `--set` variants × seeds, and the table of their results
//! (mean ± std over seeds), the way long-tail papers report them. `npe study` runs the grid;
//! this module reads the study file, plans the runs and aggregates their summaries.

use super::compare::pct;
use super::report::Summary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One row family of a study: a pipeline with its own `--set` flags.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StudyRun {
    /// Pipeline file (relative to the working directory).
    pub pipeline: PathBuf,
    /// `--set` flags of this run (after the study's own).
    #[serde(default)]
    pub set: Vec<String>,
}

/// A study file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StudySpec {
    /// Name: runs and tables go to `runs/studies/<name>/` (`--root` changes the folder).
    pub name: String,
    /// Free text, printed above the table.
    #[serde(default)]
    pub description: Option<String>,
    /// Seeds of every run. Default `[0]`.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// `--set` flags for every run.
    #[serde(default)]
    pub set: Vec<String>,
    /// Backend for every run (default: the command's `--backend`).
    #[serde(default)]
    pub backend: Option<String>,
    /// The runs, by label.
    pub runs: BTreeMap<String, StudyRun>,
    /// Axes crossed with every run: axis → value label → `--set` flags.
    #[serde(default)]
    pub grid: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// One training run of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRun {
    /// Row label: run label and grid values, e.g. `npe_m1 if=10`.
    pub row: String,
    /// Seed.
    pub seed: u64,
    /// Pipeline file.
    pub pipeline: PathBuf,
    /// Every `--set` flag, in order: study, grid, run, then `seed=`.
    pub sets: Vec<String>,
    /// Output folder.
    pub out: PathBuf,
}

impl StudySpec {
    /// Read a study file.
    pub fn load(path: &Path) -> Result<StudySpec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let spec: StudySpec = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if spec.runs.is_empty() || spec.seeds.is_empty() {
            return Err(format!("{}: a study needs at least one run and one seed", path.display()));
        }
        let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "_-.=".contains(c));
        let labels = std::iter::once(spec.name.as_str())
            .chain(spec.runs.keys().map(String::as_str))
            .chain(spec.grid.values().flat_map(|v| v.keys().map(String::as_str)));
        if let Some(bad) = labels.clone().find(|l| !plain(l)) {
            return Err(format!("{}: `{bad}` must be a plain name (letters, digits, `_`, `-`)", path.display()));
        }
        Ok(spec)
    }

    /// Every run of the grid, under `root` (`studies/<name>`).
    pub fn plan(&self, root: &Path) -> Vec<PlannedRun> {
        // The grid's cartesian product: a list of (labels, flags).
        let mut combos: Vec<(Vec<String>, Vec<String>)> = vec![(vec![], vec![])];
        for (axis, values) in &self.grid {
            combos = combos
                .into_iter()
                .flat_map(|(labels, sets)| {
                    values.iter().map(move |(v, s)| {
                        let mut l = labels.clone();
                        l.push(format!("{axis}={v}"));
                        (l, [sets.clone(), s.clone()].concat())
                    })
                })
                .collect();
        }
        let mut out = vec![];
        for (label, run) in &self.runs {
            for (grid_labels, grid_sets) in &combos {
                let row =
                    std::iter::once(label.clone()).chain(grid_labels.iter().cloned()).collect::<Vec<_>>().join(" ");
                for &seed in &self.seeds {
                    let dir = format!("{}-s{seed}", row.replace(' ', "-").replace('=', ""));
                    let sets =
                        [self.set.clone(), grid_sets.clone(), run.set.clone(), vec![format!("seed={seed}")]].concat();
                    out.push(PlannedRun {
                        row: row.clone(),
                        seed,
                        pipeline: run.pipeline.clone(),
                        sets,
                        out: root.join(dir),
                    });
                }
            }
        }
        out
    }
}

/// Where a planned run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// `summary.json` exists: reused.
    Done,
    /// Checkpoints but no summary: resumed.
    Interrupted,
    /// Nothing yet.
    Pending,
}

/// The state of a run's folder.
pub fn state(out: &Path) -> RunState {
    if out.join("summary.json").is_file() {
        RunState::Done
    } else if crate::checkpoint::list(&out.join("checkpoints")).is_empty() {
        RunState::Pending
    } else {
        RunState::Interrupted
    }
}

/// Mean and sample standard deviation (0 for one value); None for no values.
pub fn stat(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 { (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    Some((m, sd))
}

/// `mean ± std` of percentages over seeds (just the mean for one seed).
fn mean_std(xs: &[f64]) -> String {
    match stat(xs) {
        None => "—".into(),
        Some((m, _)) if xs.len() == 1 => pct(Some(m)),
        Some((m, sd)) => format!("{} ± {:.2}", pct(Some(m)), 100.0 * sd),
    }
}

/// One aggregated table row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Run label (with grid values).
    pub row: String,
    /// Evaluated output (`logits`, `npe`, `posthoc`, ...).
    pub output: String,
    /// What the numbers are: `mean per-class accuracy` (head/medium/tail accuracy) or, for
    /// segmentation, `mIoU` (tail: mean IoU of the tail classes; no head/medium).
    pub metric: String,
    /// Seeds aggregated.
    pub seeds: usize,
    /// Per seed, in [0, 1]: mean per-class accuracy, head, medium, tail.
    pub mean_per_class: Vec<f64>,
    /// See `mean_per_class`.
    pub head: Vec<f64>,
    /// See `mean_per_class`.
    pub medium: Vec<f64>,
    /// See `mean_per_class`.
    pub tail: Vec<f64>,
    /// Prior fit per seed (training split): Pearson r and slope (PEM runs only).
    pub prior_r: Vec<f64>,
    /// See `prior_r`.
    pub prior_slope: Vec<f64>,
    /// Fit of the prior the classifier implies (its mean softmax over training images), per
    /// seed, when `prior_estimate` names the logits: Pearson r and slope.
    pub classifier_prior_r: Vec<f64>,
    /// See `classifier_prior_r`.
    pub classifier_prior_slope: Vec<f64>,
    /// The scale this output used, when calibrated on training images (`npe_la` `scale: auto`).
    pub scale: Vec<f64>,
    /// The data of the first seed's run.
    pub data: String,
}

/// Aggregate finished runs into rows: one per (row label, evaluated output), in plan order.
pub fn aggregate(runs: &[(PlannedRun, Summary)]) -> Vec<Row> {
    let mut rows: Vec<Row> = vec![];
    for (plan, s) in runs {
        // (mean, head, medium, tail) per output: accuracy, or segmentation's mIoU and tail mIoU.
        type Scores = (f64, Option<f64>, Option<f64>, Option<f64>);
        let (metric, outputs): (&str, Vec<(&String, Scores)>) =
            match (s.eval.accuracy.values().next(), s.eval.segmentation.values().next()) {
                (Some(acc), _) => (
                    "mean per-class accuracy",
                    acc.iter().map(|(o, a)| (o, (a.mean_per_class, a.head, a.medium, a.tail))).collect(),
                ),
                (None, Some(seg)) => {
                    ("mIoU", seg.iter().map(|(o, m)| (o, (m.miou, None, None, m.tail_miou))).collect())
                }
                (None, None) => continue,
            };
        let prior = s.eval.prior.values().next().and_then(|p| p.train.clone());
        let classifier = s.eval.prior.values().next().and_then(|p| p.train_predicted.clone());
        for (output, (mean, head, medium, tail)) in outputs {
            let i = match rows.iter().position(|r| r.row == plan.row && &r.output == output) {
                Some(i) => i,
                None => {
                    rows.push(Row {
                        row: plan.row.clone(),
                        output: output.clone(),
                        metric: metric.into(),
                        seeds: 0,
                        mean_per_class: vec![],
                        head: vec![],
                        medium: vec![],
                        tail: vec![],
                        prior_r: vec![],
                        prior_slope: vec![],
                        classifier_prior_r: vec![],
                        classifier_prior_slope: vec![],
                        scale: vec![],
                        data: format!("{} ({})", s.data.name, s.data.provenance),
                    });
                    rows.len() - 1
                }
            };
            let r = &mut rows[i];
            r.seeds += 1;
            r.mean_per_class.push(mean);
            r.head.extend(head);
            r.medium.extend(medium);
            r.tail.extend(tail);
            if let Some(p) = &prior {
                r.prior_r.push(p.r);
                r.prior_slope.push(p.slope);
            }
            if let Some(p) = &classifier {
                r.classifier_prior_r.push(p.r);
                r.classifier_prior_slope.push(p.slope);
            }
            if let Some(c) = s.eval.calibration.get(output).filter(|c| c.vector.is_none()) {
                r.scale.push(c.scale);
            }
        }
    }
    rows
}

/// The rows as a Markdown table (percentages, mean ± std over seeds).
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| run | output | seeds | metric | mean | head | medium | tail | PEM prior r | PEM slope | classifier prior r | classifier slope | fitted scale |\n|:--|:--|--:|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    let fit = |xs: &[f64]| stat(xs).map_or("—".to_string(), |(m, _)| format!("{m:.3}"));
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.row,
            r.output,
            r.seeds,
            r.metric,
            mean_std(&r.mean_per_class),
            mean_std(&r.head),
            mean_std(&r.medium),
            mean_std(&r.tail),
            fit(&r.prior_r),
            fit(&r.prior_slope),
            fit(&r.classifier_prior_r),
            fit(&r.classifier_prior_slope),
            fit(&r.scale)
        );
    }
    s
}

/// The rows as CSV (one line per row and seed-aggregate, fractions in [0, 1]).
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "run,output,seeds,mean_per_class,mean_per_class_std,head,medium,tail,prior_r,prior_slope,classifier_prior_r,classifier_prior_slope,scale\n",
    );
    for r in rows {
        let (m, sd) = stat(&r.mean_per_class).unwrap_or((f64::NAN, 0.0));
        let opt = |xs: &[f64]| stat(xs).map_or(String::new(), |(m, _)| format!("{m:.6}"));
        let _ = writeln!(
            s,
            "\"{}\",{},{},{},{m:.6},{sd:.6},{},{},{},{},{},{},{},{}",
            r.row,
            r.output,
            r.seeds,
            r.metric,
            opt(&r.head),
            opt(&r.medium),
            opt(&r.tail),
            opt(&r.prior_r),
            opt(&r.prior_slope),
            opt(&r.classifier_prior_r),
            opt(&r.classifier_prior_slope),
            opt(&r.scale)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_crosses_runs_axes_and_seeds_in_a_stable_order() {
        let spec: StudySpec = serde_yaml::from_str(
            "name: s\nseeds: [0, 1]\nset: [train.epochs=2]\nruns:\n  ce: {pipeline: a.yaml}\n  npe: {pipeline: b.yaml, set: [nodes.prior.count=3]}\ngrid:\n  if: {'10': [data.long_tail.imbalance_factor=10], '100': [data.long_tail.imbalance_factor=100]}\n",
        )
        .unwrap();
        let plan = spec.plan(Path::new("studies/s"));
        assert_eq!(plan.len(), 2 * 2 * 2);
        assert_eq!(plan[0].row, "ce if=10");
        assert_eq!(plan[0].out, Path::new("studies/s/ce-if10-s0"));
        let last = plan.last().unwrap();
        assert_eq!(last.row, "npe if=100");
        assert_eq!(
            last.sets,
            ["train.epochs=2", "data.long_tail.imbalance_factor=100", "nodes.prior.count=3", "seed=1"]
        );
    }

    #[test]
    fn mean_and_sample_std_over_seeds() {
        assert_eq!(mean_std(&[0.80, 0.82, 0.84]), format!("{} ± 2.00", pct(Some(0.82))));
        assert_eq!(mean_std(&[0.5]), pct(Some(0.5)));
        assert_eq!(mean_std(&[]), "—");
    }
}
