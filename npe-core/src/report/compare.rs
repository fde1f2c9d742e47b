//! `npe compare`: finished runs side by side. Reads each run's `summary.json` (or the JSON of
//! `npe eval --json`) and tabulates accuracy by group, IoU and the prior fit, with differences
//! against the first row, and the data every run was trained on, so a table says where its
//! numbers come from.

use super::summary::{DataReport, EvalOutput, EvalReport, Summary};
use crate::metrics::{Accuracy, SegMetrics};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Why a run could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// Neither a file nor a run directory with `summary.json`.
    #[error("{}: no such run\n  hint: give a run directory (the `--out` of `npe train`, holding summary.json) or a JSON file written by `npe eval --json`", .0.display())]
    Missing(PathBuf),
    /// Unreadable file.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// The file is neither a summary nor an evaluation report.
    #[error("{}: not a summary.json of `npe train` nor the output of `npe eval --json`: {reason}", .path.display())]
    Format {
        /// File.
        path: PathBuf,
        /// What the JSON parser said.
        reason: String,
    },
}

/// One run's results.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Row label: the run directory's name, or the file's stem.
    pub label: String,
    /// Backend and device (summaries only).
    pub backend: Option<String>,
    /// Epochs trained (summaries only).
    pub epochs: Option<usize>,
    /// The training data (summaries only; evaluation reports do not record it).
    pub data: Option<DataReport>,
    /// The evaluation.
    pub eval: EvalReport,
}

/// Read a run directory (its `summary.json`) or a JSON file (summary or `npe eval --json` output).
pub fn load_run(path: &Path) -> Result<RunResult, CompareError> {
    let file = if path.is_dir() { path.join("summary.json") } else { path.to_path_buf() };
    if !file.is_file() {
        return Err(CompareError::Missing(path.to_path_buf()));
    }
    let text =
        std::fs::read_to_string(&file).map_err(|source| CompareError::Io(crate::error::IoError::new(&file, source)))?;
    let stem = if path.is_dir() { path.file_name() } else { path.file_stem() };
    let label = stem.map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| CompareError::Format { path: file.clone(), reason: e.to_string() })?;
    let format_err = |e: serde_json::Error| CompareError::Format { path: file.clone(), reason: e.to_string() };
    if value.get("eval").is_some_and(|e| e.is_object()) {
        let s: Summary = serde_json::from_value(value).map_err(format_err)?;
        Ok(RunResult { label, backend: Some(s.backend), epochs: Some(s.epochs), data: Some(s.data), eval: s.eval })
    } else {
        let out: EvalOutput = serde_json::from_value(value).map_err(format_err)?;
        let backend = (!out.backend.is_empty()).then_some(out.backend);
        Ok(RunResult { label, backend, epochs: None, data: out.data, eval: out.eval })
    }
}

/// What `compare` shows and how.
#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    /// Table style.
    pub style: TableStyle,
    /// Only these outputs (e.g. `npe`) in the accuracy and segmentation tables; all if empty.
    pub outputs: Vec<String>,
    /// Leave out the prior-fit table.
    pub no_prior: bool,
}

/// How tables are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TableStyle {
    /// Aligned columns for a terminal.
    #[default]
    Text,
    /// GitHub-flavoured Markdown.
    Markdown,
}

/// A table of strings; the first column is left-aligned, the others right-aligned.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    fn render(&self, style: TableStyle, out: &mut String) {
        let cols = self.header.len();
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                let cells = self.rows.iter().map(|r| r[c].chars().count());
                cells.chain([self.header[c].chars().count()]).max().unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String], out: &mut String| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(c, s)| if c < 2 { format!("{s:<w$}", w = width[c]) } else { format!("{s:>w$}", w = width[c]) })
                .collect();
            match style {
                TableStyle::Text => writeln!(out, "  {}", padded.join("  ").trim_end()),
                TableStyle::Markdown => writeln!(out, "| {} |", padded.join(" | ")),
            }
            .unwrap();
        };
        line(&self.header, out);
        if style == TableStyle::Markdown {
            let rule: Vec<String> = (0..cols)
                .map(|c| {
                    if c < 2 {
                        format!(":{}", "-".repeat(width[c] - 1))
                    } else {
                        format!("{}:", "-".repeat(width[c] - 1))
                    }
                })
                .collect();
            writeln!(out, "| {} |", rule.join(" | ")).unwrap();
        }
        for r in &self.rows {
            line(r, out);
        }
    }
}

/// A fraction as a percentage with two decimals, `-` when absent (e.g. an empty class group).
pub fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.2}", 100.0 * v))
}

fn delta(x: f64, base: Option<f64>) -> String {
    match base {
        // Differences that round to zero print as +0.00, never -0.00.
        Some(b) => format!("{:+.2}", (100.0 * (x - b) * 100.0).round() / 100.0 + 0.0),
        None => "-".into(),
    }
}

fn heading(title: &str, style: TableStyle, out: &mut String) {
    match style {
        TableStyle::Text => writeln!(out, "\n{title}").unwrap(),
        TableStyle::Markdown => writeln!(out, "\n### {title}\n").unwrap(),
    }
}

/// Where each run's numbers come from: one line per distinct training set.
fn data_lines(runs: &[RunResult], style: TableStyle, out: &mut String) {
    let mut seen: Vec<(String, Vec<&str>)> = Vec::new();
    for r in runs {
        let key = match &r.data {
            Some(d) => format!(
                "{} ({}; {} training images, {} test images; {})",
                d.name, d.provenance, d.train_images, d.test_images, d.origin
            ),
            None => "not recorded (written by an older `npe eval --json`)".to_string(),
        };
        match seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, labels)) => labels.push(&r.label),
            None => seen.push((key, vec![&r.label])),
        }
    }
    let bullet = if style == TableStyle::Markdown { "- " } else { "" };
    for (key, labels) in &seen {
        writeln!(out, "{bullet}data of {}: {key}", labels.join(", ")).unwrap();
    }
    let recorded: Vec<&str> = runs.iter().filter_map(|r| r.data.as_ref()).map(|d| d.name.as_str()).collect();
    if recorded.windows(2).any(|w| w[0] != w[1]) {
        writeln!(out, "{bullet}warning: these runs were trained on different data; differences mix data and method")
            .unwrap();
    }
}

/// One row per (run, evaluator, output) of a metric family: run, output, backend, epochs, the
/// metric's `cells`, then the differences of its (main, tail) values against the first row.
/// `None` when no run has such an evaluator.
fn metric_table<M>(
    runs: &[RunResult],
    keep: &[String],
    columns: &[&str],
    family: impl Fn(&EvalReport) -> &BTreeMap<String, BTreeMap<String, M>>,
    cells: impl Fn(&M) -> ((f64, Option<f64>), Vec<String>),
) -> Option<Table> {
    let header: Vec<&str> = ["run", "output", "backend", "epochs"].into_iter().chain(columns.iter().copied()).collect();
    let mut table = Table::new(&header);
    let mut base: Option<(f64, Option<f64>)> = None;
    for r in runs {
        let backend = r.backend.as_deref().map_or("-", |b| b.split_whitespace().next().unwrap_or(b));
        let epochs = r.epochs.map_or("-".into(), |e| e.to_string());
        for outputs in family(&r.eval).values() {
            for (output, m) in outputs.iter().filter(|(o, _)| keep.is_empty() || keep.contains(o)) {
                let ((main, tail), values) = cells(m);
                let (bm, bt) = *base.get_or_insert((main, tail));
                let mut row = vec![r.label.clone(), output.clone(), backend.to_string(), epochs.clone()];
                row.extend(values);
                row.push(delta(main, Some(bm)));
                row.push(tail.map_or("-".into(), |t| delta(t, bt)));
                table.rows.push(row);
            }
        }
    }
    (!table.rows.is_empty()).then_some(table)
}

/// The comparison of `runs` (in the given order; differences are against the first row).
pub fn compare(runs: &[RunResult], opts: &CompareOptions) -> String {
    let style = opts.style;
    let mut out = String::new();
    data_lines(runs, style, &mut out);
    let accuracy = accuracy_table(runs, &opts.outputs);
    let segmentation = segmentation_table(runs, &opts.outputs);
    let vessel = vessel_table(runs, &opts.outputs);
    let sections = [
        (&accuracy, "Mean per-class accuracy (%) on the balanced test split"),
        (&segmentation, "Segmentation (%) on the test split"),
        (&vessel, "Foreground (vessel) class (%) over the labelled pixels"),
    ];
    for (table, title) in sections {
        if let Some(t) = table {
            let (first, out0) = (&t.rows[0][0], &t.rows[0][1]);
            heading(&format!("{title}; Δ against `{first}` `{out0}`"), style, &mut out);
            t.render(style, &mut out);
        }
    }
    let prior = if opts.no_prior { None } else { prior_table(runs) };
    if let Some(t) = &prior {
        heading(
            "Learned prior vs the true training prior (−h̄ against log prior; slope 1 = calibrated; h̄ averaged over each split)",
            style,
            &mut out,
        );
        t.render(style, &mut out);
    }
    if accuracy.is_none() && segmentation.is_none() && prior.is_none() {
        writeln!(out, "\n(no evaluator results in these runs)").unwrap();
    }
    out
}

/// Mean per-class accuracy with its head/medium/tail splits.
fn accuracy_table(runs: &[RunResult], keep: &[String]) -> Option<Table> {
    metric_table(
        runs,
        keep,
        &["mean", "head", "medium", "tail", "Δ mean", "Δ tail"],
        |e| &e.accuracy,
        |a: &Accuracy| {
            ((a.mean_per_class, a.tail), vec![pct(Some(a.mean_per_class)), pct(a.head), pct(a.medium), pct(a.tail)])
        },
    )
}

/// mIoU, tail mIoU and mean pixel accuracy.
fn segmentation_table(runs: &[RunResult], keep: &[String]) -> Option<Table> {
    metric_table(
        runs,
        keep,
        &["mIoU", "tail mIoU", "mean acc", "Δ mIoU", "Δ tail"],
        |e| &e.segmentation,
        |s: &SegMetrics| {
            ((s.miou, s.tail_miou), vec![pct(Some(s.miou)), pct(s.tail_miou), pct(Some(s.mean_pixel_accuracy))])
        },
    )
}

/// The foreground class of binary (vessel) segmentation; `None` unless some run has one.
fn vessel_table(runs: &[RunResult], keep: &[String]) -> Option<Table> {
    let binary = runs.iter().any(|r| r.eval.segmentation.values().flat_map(|o| o.values()).any(|m| m.binary.is_some()));
    if !binary {
        return None;
    }
    metric_table(
        runs,
        keep,
        &["IoU", "Dice", "sensitivity", "specificity", "AUC", "Δ Dice", "Δ AUC"],
        |e| &e.segmentation,
        |s: &SegMetrics| match &s.binary {
            Some(b) => (
                (b.dice, b.auc),
                vec![
                    pct(s.per_class_iou.get(1).copied()),
                    pct(Some(b.dice)),
                    pct(Some(b.sensitivity)),
                    pct(Some(b.specificity)),
                    pct(b.auc),
                ],
            ),
            None => ((f64::NAN, None), vec!["-".into(); 5]),
        },
    )
}

/// The learned prior's fit to the true training prior, per evaluator and split.
fn prior_table(runs: &[RunResult]) -> Option<Table> {
    let mut prior = Table::new(&["run", "evaluator", "split", "r", "spearman", "slope", "KL"]);
    for r in runs {
        for (ev, p) in &r.eval.prior {
            let fits = [("train", p.train.as_ref()), ("test", Some(&p.test))];
            for (split, f) in fits.into_iter().filter_map(|(s, f)| f.map(|f| (s, f))) {
                prior.rows.push(vec![
                    r.label.clone(),
                    ev.clone(),
                    split.into(),
                    format!("{:.4}", f.r),
                    format!("{:.4}", f.spearman),
                    format!("{:.3}", f.slope),
                    format!("{:.4}", f.kl),
                ]);
            }
        }
    }
    (!prior.rows.is_empty()).then_some(prior)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Provenance;
    use crate::metrics::PriorFit;

    fn acc(mean: f64, tail: f64) -> Accuracy {
        Accuracy {
            mean_per_class: mean,
            overall: mean,
            per_class: vec![],
            head: Some(0.9),
            medium: None,
            tail: Some(tail),
        }
    }

    fn run(label: &str, data: &str, outputs: &[(&str, f64, f64)]) -> RunResult {
        let mut eval = EvalReport::default();
        let table = outputs.iter().map(|(o, m, t)| (o.to_string(), acc(*m, *t))).collect::<BTreeMap<_, _>>();
        eval.accuracy.insert("accuracy".into(), table);
        let data = DataReport {
            name: data.into(),
            origin: "/data".into(),
            provenance: Provenance::SemiSynthetic,
            classes: vec![],
            train_counts: vec![],
            train_images: 100,
            test_images: 50,
            groups: vec![],
            skipped_files: vec![],
        };
        RunResult { label: label.into(), backend: Some("tch cpu".into()), epochs: Some(3), data: Some(data), eval }
    }

    #[test]
    fn differences_are_against_the_first_row_and_data_is_named() {
        let runs = [
            run("ce", "D", &[("logits", 0.70, 0.40)]),
            run("npe", "D", &[("logits", 0.72, 0.45), ("npe", 0.78, 0.61)]),
        ];
        let text = compare(&runs, &CompareOptions::default());
        assert!(text.contains("data of ce, npe: D (semi-synthetic data; 100 training images"), "{text}");
        let fields = |l: &str| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let row = text.lines().find(|l| fields(l) == "npe npe").unwrap();
        assert!(row.contains("78.00") && row.contains("+8.00") && row.contains("+21.00"), "{row}");
        let first = text.lines().find(|l| l.trim_start().starts_with("ce ")).unwrap();
        assert!(first.contains("+0.00"), "{first}");
        assert!(!text.contains("warning"), "{text}");
    }

    #[test]
    fn outputs_filter_keeps_only_named_rows_and_deltas_never_print_minus_zero() {
        let runs = [
            run("s1", "D", &[("logits", 0.2059, 0.0), ("npe", 0.2692, 0.0943)]),
            run("s2", "D", &[("logits", 0.20589999, 0.0), ("npe", 0.2172, 0.0007)]),
        ];
        let all = compare(&runs, &CompareOptions::default());
        assert!(!all.contains("-0.00"), "{all}");
        let opts = CompareOptions { outputs: vec!["npe".into()], ..Default::default() };
        let text = compare(&runs, &opts);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("  s")).collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert!(rows.iter().all(|r| r.split_whitespace().nth(1) == Some("npe")), "{text}");
        assert!(rows[1].contains("-5.20") && rows[1].contains("-9.36"), "{}", rows[1]);
        assert!(text.contains("Δ against `s1` `npe`"), "{text}");
    }

    #[test]
    fn no_prior_leaves_out_the_prior_table() {
        let mut r = run("npe", "D", &[("npe", 0.8, 0.6)]);
        let fit = PriorFit { r: 0.95, spearman: 0.97, slope: 1.1, kl: 0.1, estimate: vec![], truth: vec![] };
        r.eval.prior.insert(
            "prior_fit".into(),
            super::super::summary::PriorReport { train: None, train_posterior: None, train_predicted: None, test: fit },
        );
        let with = compare(std::slice::from_ref(&r), &CompareOptions::default());
        assert!(with.contains("Learned prior") && with.contains("0.9500"), "{with}");
        let without = compare(&[r], &CompareOptions { no_prior: true, ..Default::default() });
        assert!(!without.contains("Learned prior") && without.contains("80.00"), "{without}");
    }

    #[test]
    fn markdown_tables_and_different_data_are_flagged() {
        let runs = [run("a", "D1", &[("logits", 0.5, 0.1)]), run("b", "D2", &[("logits", 0.6, 0.2)])];
        let md = compare(&runs, &CompareOptions { style: TableStyle::Markdown, ..Default::default() });
        assert!(md.contains("warning: these runs were trained on different data"), "{md}");
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(lines.len(), 4, "header, rule, two rows: {md}");
        assert!(lines[1].contains(":--") && lines[1].contains("-:"), "{}", lines[1]);
        assert!(lines.iter().all(|l| l.matches('|').count() == 11), "{md}");
    }

    #[test]
    fn summaries_and_eval_reports_load_and_bad_files_say_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let r = run("x", "D", &[("logits", 0.5, 0.1)]);
        let summary = Summary {
            pipeline: "p".into(),
            backend: "burn cpu".into(),
            data: r.data.clone().unwrap(),
            epochs: 2,
            steps: 10,
            train_seconds: 1.0,
            images_per_second: 10.0,
            final_train_loss: BTreeMap::new(),
            eval: r.eval.clone(),
            model: "model.safetensors".into(),
            phases: Default::default(),
        };
        let run_dir = dir.path().join("run-a");
        std::fs::create_dir(&run_dir).unwrap();
        std::fs::write(run_dir.join("summary.json"), serde_json::to_string(&summary).unwrap()).unwrap();
        let loaded = load_run(&run_dir).unwrap();
        assert_eq!((loaded.label.as_str(), loaded.epochs), ("run-a", Some(2)));
        let ev = dir.path().join("s2.json");
        let out = EvalOutput {
            checkpoint: "m.safetensors".into(),
            backend: "tch cpu".into(),
            data: r.data.clone(),
            eval: r.eval.clone(),
        };
        std::fs::write(&ev, serde_json::to_string(&out).unwrap()).unwrap();
        let loaded = load_run(&ev).unwrap();
        assert_eq!((loaded.label.as_str(), loaded.backend.as_deref()), ("s2", Some("tch cpu")));
        assert!(loaded.data.is_some() && loaded.eval.accuracy["accuracy"]["logits"].mean_per_class == 0.5);
        // Evaluation files written before data was recorded still load, and say so.
        std::fs::write(&ev, serde_json::to_string(&r.eval).unwrap()).unwrap();
        let old = load_run(&ev).unwrap();
        assert!(old.data.is_none() && old.backend.is_none());
        assert!(compare(&[old], &CompareOptions::default()).contains("not recorded"));

        let missing = load_run(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(missing.contains("nope: no such run") && missing.contains("hint"), "{missing}");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"pipeline\": 3}").unwrap();
        let e = load_run(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.json: not a summary.json"), "{e}");
        std::fs::write(&bad, "\u{0}\u{1}garbage").unwrap();
        assert!(load_run(&bad).unwrap_err().to_string().contains("bad.json"));
    }
}
