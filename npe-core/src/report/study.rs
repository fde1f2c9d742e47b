//! Studies: a grid of pipelines × `--set` variants × seeds, and the table of their results
//! (mean ± std over seeds), the way long-tail papers report them. `npe study` runs the grid;
//! this module reads the study file, plans the runs and aggregates their summaries.

use super::compare::pct;
use super::summary::Summary;
use crate::error::Result;
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
    /// The runs, by label, in the file's order (the order they train in, seed by seed).
    #[serde(deserialize_with = "in_file_order", serialize_with = "as_map")]
    pub runs: Vec<(String, StudyRun)>,
    /// Axes crossed with every run: axis → value label → `--set` flags.
    #[serde(default)]
    pub grid: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// A YAML map read as `(key, value)` pairs in the file's order (a `BTreeMap` would sort them);
/// a label given twice is an error.
fn in_file_order<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, StudyRun)>, D::Error> {
    struct Ordered;
    impl<'de> serde::de::Visitor<'de> for Ordered {
        type Value = Vec<(String, StudyRun)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of run labels to runs")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<(String, StudyRun)> = vec![];
            while let Some((k, v)) = map.next_entry::<String, StudyRun>()? {
                if out.iter().any(|(l, _)| *l == k) {
                    return Err(serde::de::Error::custom(format!("run `{k}` is given twice")));
                }
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_map(Ordered)
}

fn as_map<S: serde::Serializer>(runs: &[(String, StudyRun)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(runs.iter().map(|(k, v)| (k, v)))
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
    pub fn load(path: &Path) -> Result<StudySpec> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let spec: StudySpec = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if spec.runs.is_empty() || spec.seeds.is_empty() {
            return Err(format!("{}: a study needs at least one run and one seed", path.display()).into());
        }
        let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "_-.=".contains(c));
        let labels = std::iter::once(spec.name.as_str())
            .chain(spec.runs.iter().map(|(l, _)| l.as_str()))
            .chain(spec.grid.values().flat_map(|v| v.keys().map(String::as_str)));
        // Axis names too; and no name of dots only, which as a folder would be `.` or `..`.
        let labels = labels.chain(spec.grid.keys().map(String::as_str));
        if let Some(bad) = labels.clone().find(|l| !plain(l) || l.chars().all(|c| c == '.')) {
            return Err(format!(
                "{}: `{bad}` must be a plain name (letters, digits, `_`, `-`, `.`, `=`; not only dots)",
                path.display()
            )
            .into());
        }
        // Two runs must never share a folder (`0.05` and `=0.05` once did).
        let mut seen: BTreeMap<PathBuf, String> = BTreeMap::new();
        for run in spec.plan(Path::new("")) {
            let who = format!("`{}` seed {}", run.row, run.seed);
            if let Some(other) = seen.insert(run.out.clone(), who.clone()) {
                return Err(format!(
                    "{}: {other} and {who} would share the folder `{}`\n  hint: rename one of their labels",
                    path.display(),
                    run.out.display()
                )
                .into());
            }
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
                    // `{seed}` and `{runs}` (this study's run folder) in a flag name another
                    // run's files: `train.init_from={runs}/ce-s{seed}/model.safetensors`.
                    let sets = [self.set.clone(), grid_sets.clone(), run.set.clone(), vec![format!("seed={seed}")]]
                        .concat()
                        .into_iter()
                        .map(|s| s.replace("{seed}", &seed.to_string()).replace("{runs}", &root.display().to_string()))
                        .collect();
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
    /// `summary.json` reads as a summary: reused.
    Done,
    /// Checkpoints but no summary: resumed.
    Interrupted,
    /// Nothing yet.
    Pending,
    /// `summary.json` is there but does not read as a summary (truncated), or no longer matches
    /// the checksum written with it (edited).
    Broken,
    /// What the folder ran differs from what the study would run now (set by `npe study`,
    /// which compares fingerprints).
    Stale,
}

/// The state of a run's folder.
pub fn state(out: &Path) -> RunState {
    let summary = out.join("summary.json");
    if summary.is_file() {
        let reads = std::fs::read(&summary)
            .ok()
            .filter(|b| super::summary::summary_matches_checksum(out, b) != Some(false))
            .and_then(|b| serde_json::from_slice::<Summary>(&b).ok())
            .is_some();
        if reads { RunState::Done } else { RunState::Broken }
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
    /// Two-class segmentation (vessels), per seed: the foreground's IoU, Dice, sensitivity,
    /// specificity and AUC.
    pub vessel: Vessel,
    /// The data of the first seed's run.
    pub data: String,
}

/// The foreground metrics of a two-class segmentation over seeds (see [`Row::vessel`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Vessel {
    /// IoU of class 1.
    pub iou: Vec<f64>,
    /// Dice (F1).
    pub dice: Vec<f64>,
    /// Sensitivity.
    pub sensitivity: Vec<f64>,
    /// Specificity.
    pub specificity: Vec<f64>,
    /// ROC AUC of the foreground probability.
    pub auc: Vec<f64>,
}

impl Vessel {
    fn add(&mut self, m: &crate::metrics::SegMetrics) {
        if let Some(b) = &m.binary {
            self.iou.extend(m.per_class_iou.get(1));
            self.dice.push(b.dice);
            self.sensitivity.push(b.sensitivity);
            self.specificity.push(b.specificity);
            self.auc.extend(b.auc);
        }
    }
}

impl Row {
    /// A row with no seeds yet.
    fn empty(row: &str, output: &str, metric: &str, data: String) -> Row {
        Row {
            row: row.into(),
            output: output.into(),
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
            vessel: Vessel::default(),
            data,
        }
    }
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
                    let data = format!("{} ({})", s.data.name, s.data.provenance);
                    rows.push(Row::empty(&plan.row, output, metric, data));
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
            if let Some(m) = s.eval.segmentation.values().next().and_then(|seg| seg.get(output)) {
                r.vessel.add(m);
            }
        }
    }
    rows
}

/// A run's training records (`metrics.jsonl`), for the prior-over-training table.
#[derive(Clone, Debug)]
pub struct RunRecords {
    /// The run.
    pub run: PlannedRun,
    /// Its per-epoch records, so far.
    pub records: Vec<super::summary::EpochRecord>,
    /// Whether it has finished (`summary.json`).
    pub finished: bool,
}

/// Whether an evaluation epoch goes into the prior-over-training table: every one of the
/// first 20 epochs, then every 20th, and the last.
fn shown_epoch(epoch: usize, last: usize) -> bool {
    epoch <= 20 || epoch % 20 == 0 || epoch == last
}

/// The prior fit at each shown evaluation of every run that evaluates a `prior_estimate`:
/// per run, a table of epoch → PEM r and slope, the classifier's implied slope, `scale: auto`'s
/// fitted scale and every output's metric. Empty when no run has one.
pub fn prior_over_training_markdown(runs: &[RunRecords]) -> String {
    let mut s = String::new();
    for rr in runs {
        let evals: Vec<(usize, &super::summary::EvalReport)> =
            rr.records.iter().filter_map(|r| r.eval.as_ref().map(|e| (r.epoch, e))).collect();
        if !evals.iter().any(|(_, e)| !e.prior.is_empty()) {
            continue;
        }
        let last = evals.last().map_or(0, |e| e.0);
        let outputs: Vec<String> = evals.first().map(|(_, e)| super::plot::headline_names(e)).unwrap_or_default();
        let _ = writeln!(
            s,
            "\n**{} seed {}** ({}; epoch {last} so far)\n",
            rr.run.row,
            rr.run.seed,
            if rr.finished { "finished" } else { "in progress" }
        );
        let _ = writeln!(
            s,
            "| epoch | PEM prior r | PEM slope | classifier slope | fitted scale |{}\n|--:|--:|--:|--:|--:|{}",
            outputs.iter().map(|o| format!(" {o} |")).collect::<String>(),
            "--:|".repeat(outputs.len())
        );
        let f3 = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.3}"));
        for (epoch, e) in evals.iter().filter(|(ep, _)| shown_epoch(*ep, last)) {
            let p = e.prior.values().next();
            let pem = p.and_then(|p| p.train.as_ref());
            let cls = p.and_then(|p| p.train_predicted.as_ref());
            let scale = e.calibration.values().find(|c| c.vector.is_none()).map(|c| c.scale);
            let metrics = super::plot::headline_values(e);
            let _ = writeln!(
                s,
                "| {epoch} | {} | {} | {} | {} |{}",
                f3(pem.map(|f| f.r)),
                f3(pem.map(|f| f.slope)),
                f3(cls.map(|f| f.slope)),
                f3(scale),
                outputs
                    .iter()
                    .map(|o| format!(
                        " {} |",
                        metrics.iter().find(|m| &m.0 == o).map_or("—".into(), |m| format!("{:.2}", m.1))
                    ))
                    .collect::<String>()
            );
        }
    }
    s
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
    let vessel: Vec<&Row> = rows.iter().filter(|r| !r.vessel.dice.is_empty()).collect();
    if !vessel.is_empty() {
        s.push_str(
            "\nForeground (vessel) class, over the labelled pixels (inside the field of view where the data has one), %:\n\n| run | output | seeds | IoU | Dice | sensitivity | specificity | AUC |\n|:--|:--|--:|--:|--:|--:|--:|--:|\n",
        );
        for r in vessel {
            let v = &r.vessel;
            let mut cells = vec![r.row.clone(), r.output.clone(), r.seeds.to_string()];
            cells.extend([&v.iou, &v.dice, &v.sensitivity, &v.specificity, &v.auc].map(|x| mean_std(x)));
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
    }
    s
}

/// The rows as CSV (one line per row and seed-aggregate, fractions in [0, 1]).
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "run,output,seeds,metric,mean,mean_std,head,medium,tail,prior_r,prior_slope,classifier_prior_r,classifier_prior_slope,scale,vessel_iou,vessel_dice,vessel_sensitivity,vessel_specificity,vessel_auc\n",
    );
    for r in rows {
        let (m, sd) = stat(&r.mean_per_class).unwrap_or((f64::NAN, 0.0));
        let opt = |xs: &[f64]| stat(xs).map_or(String::new(), |(m, _)| format!("{m:.6}"));
        let _ = writeln!(
            s,
            "\"{}\",{},{},{},{m:.6},{sd:.6},{},{},{},{},{},{},{},{},{},{},{},{},{}",
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
            opt(&r.scale),
            opt(&r.vessel.iou),
            opt(&r.vessel.dice),
            opt(&r.vessel.sensitivity),
            opt(&r.vessel.specificity),
            opt(&r.vessel.auc)
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
        let reordered: StudySpec =
            serde_yaml::from_str("name: s\nruns:\n  zeta: {pipeline: a.yaml}\n  alpha: {pipeline: b.yaml}\n").unwrap();
        let rows: Vec<String> = reordered.plan(Path::new("s")).into_iter().map(|r| r.row).collect();
        assert_eq!(rows, ["zeta", "alpha"], "runs keep the file's order");
        let twice =
            serde_yaml::from_str::<StudySpec>("name: s\nruns:\n  a: {pipeline: a.yaml}\n  a: {pipeline: b.yaml}\n");
        assert!(twice.is_err(), "a label given twice is refused");
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
    fn seed_and_runs_placeholders_name_another_runs_files() {
        let spec: StudySpec = serde_yaml::from_str(
            "name: s\nseeds: [0, 2]\nruns:\n  ce: {pipeline: a.yaml}\n  posthoc: {pipeline: b.yaml, set: ['train.init_from={runs}/ce-s{seed}/model.safetensors']}\n",
        )
        .unwrap();
        let plan = spec.plan(Path::new("runs/studies/s"));
        let last = plan.last().unwrap();
        assert_eq!(last.sets, ["train.init_from=runs/studies/s/ce-s2/model.safetensors", "seed=2"]);
        assert_eq!(plan[0].out, Path::new("runs/studies/s/ce-s0"), "the folder the flag names");
    }

    #[test]
    fn the_prior_table_shows_early_epochs_every_20th_and_the_last() {
        use crate::metrics::PriorFit;
        use crate::report::summary::{EpochRecord, EvalReport, PriorReport};
        let fit = |slope: f64| PriorFit { r: 0.9, spearman: 0.9, slope, kl: 0.0, estimate: vec![], truth: vec![] };
        let record = |epoch: usize| EpochRecord {
            epoch,
            global_step: 0,
            lr: 0.1,
            seconds: 1.0,
            images_per_second: 1.0,
            train_loss: BTreeMap::new(),
            eval: (epoch % 5 == 0).then(|| EvalReport {
                prior: [(
                    "fit".to_string(),
                    PriorReport {
                        train: Some(fit(epoch as f64 / 10.0)),
                        train_posterior: None,
                        train_predicted: None,
                        test: fit(0.0),
                    },
                )]
                .into(),
                ..Default::default()
            }),
        };
        let run = PlannedRun { row: "npe".into(), seed: 0, pipeline: "p".into(), sets: vec![], out: "o".into() };
        let rr = RunRecords { run, records: (1..=45).map(record).collect(), finished: false };
        let md = prior_over_training_markdown(&[rr.clone()]);
        let epochs: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| epoch"))
            .map(|l| l[2..].split(' ').next().unwrap())
            .collect();
        assert_eq!(epochs, ["5", "10", "15", "20", "40", "45"]);
        assert!(md.contains("| 40 | 0.900 | 4.000 | — | — |"), "{md}");
        assert!(md.contains("in progress; epoch 45 so far"));
        let none = RunRecords { records: vec![], ..rr };
        assert_eq!(prior_over_training_markdown(&[none]), "", "no prior, no table");
    }

    #[test]
    fn labels_that_would_share_a_folder_or_leave_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            let p = dir.path().join("s.yaml");
            std::fs::write(&p, text).unwrap();
            StudySpec::load(&p).map_err(|e| e.to_string())
        };
        let e =
            load("name: s\nruns: {a: {pipeline: p.yaml}}\ngrid: {lr: {'0.05': [x=1], '=0.05': [x=2]}}\n").unwrap_err();
        assert!(e.contains("would share the folder") && e.contains("lr=0.05") && e.contains("lr==0.05"), "{e}");
        let e = load("name: '..'\nruns: {a: {pipeline: p.yaml}}\n").unwrap_err();
        assert!(e.contains("`..` must be a plain name"), "{e}");
        let e = load("name: s\nruns: {a: {pipeline: p.yaml}}\ngrid: {'/../../../x/': {v: [x=1]}}\n").unwrap_err();
        assert!(e.contains("`/../../../x/` must be a plain name"), "{e}");
        assert!(load("name: s\nruns: {a: {pipeline: p.yaml}}\ngrid: {lr: {'0.05': [x=1], '0.5': [x=2]}}\n").is_ok());
    }

    #[test]
    fn a_summary_that_does_not_read_is_broken_not_done() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(state(dir.path()), RunState::Pending);
        std::fs::write(dir.path().join("summary.json"), b"{\"pipeline\": \"q\", \"backe").unwrap();
        assert_eq!(state(dir.path()), RunState::Broken);
    }

    #[test]
    fn mean_and_sample_std_over_seeds() {
        assert_eq!(mean_std(&[0.80, 0.82, 0.84]), format!("{} ± 2.00", pct(Some(0.82))));
        assert_eq!(mean_std(&[0.5]), pct(Some(0.5)));
        assert_eq!(mean_std(&[]), "—");
    }

    #[test]
    fn vessel_metrics_get_their_own_table_and_csv_columns() {
        let row = |output: &str, dice: Vec<f64>| Row {
            seeds: dice.len(),
            mean_per_class: vec![0.6; dice.len()],
            vessel: Vessel {
                iou: dice.iter().map(|d| d / (2.0 - d)).collect(),
                sensitivity: vec![0.7; dice.len()],
                specificity: vec![0.97; dice.len()],
                auc: vec![0.95; dice.len()],
                dice,
            },
            ..Row::empty("npe", output, "mIoU", "STARE".into())
        };
        let rows = [row("logits", vec![0.70, 0.72]), row("npe", vec![0.75, 0.77])];
        let md = markdown(&rows);
        assert!(md.contains("| run | output | seeds | IoU | Dice | sensitivity | specificity | AUC |"), "{md}");
        assert!(md.contains(&format!("| npe | npe | 2 | {} ± ", pct(Some((0.75 / 1.25 + 0.77 / 1.23) / 2.0)))), "{md}");
        assert!(md.contains("| 76.00 ± 1.41 | 70.00 ± 0.00 | 97.00 ± 0.00 | 95.00 ± 0.00 |"), "{md}");
        let csv = csv(&rows);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let line: Vec<&str> = csv.lines().nth(2).unwrap().split(',').collect();
        assert_eq!(header.len(), line.len(), "every value has its column:\n{csv}");
        let at = |name: &str| line[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!((at("vessel_dice"), at("vessel_auc"), at("metric")), ("0.760000", "0.950000", "mIoU"));
        // Classification rows have no vessel table.
        let mut plain = row("logits", vec![]);
        plain.vessel = Vessel::default();
        assert!(!markdown(&[plain]).contains("Dice"));
    }
}
