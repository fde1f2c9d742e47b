//! `npe study STUDY.yaml`: run a grid of pipelines × variants × seeds (finished runs reused,
//! interrupted ones resumed, `--jobs` at once) and write the table: mean ± std over seeds as
//! Markdown, CSV and JSON, and an HTML report with every run's plots.

use super::{EXIT_FAILURE, EXIT_INVALID, SetArgs, load_ir};
use crate::Extensions;
use npe_core::train::Summary;
use npe_core::train::study::{self, PlannedRun, RunState, StudySpec};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;

#[derive(clap::Args, Debug)]
pub(crate) struct StudyArgs {
    /// Study file (see studies/*.yaml).
    pub file: PathBuf,
    /// Runs trained at once (each uses `train.threads` kernel threads).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Print the plan and a time estimate from a short timing probe; train nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Backend for runs whose study does not name one.
    #[arg(long)]
    pub backend: Option<String>,
    /// Folder for the studies' runs and tables (`<root>/<name>/`).
    #[arg(long, default_value = "runs/studies")]
    pub root: PathBuf,
    /// Train only these runs (labels of `runs:`, comma-separated); the table still shows every
    /// finished run.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Evaluate finished runs again with the study's current pipelines (e.g. after adding an
    /// adjuster or evaluator), from their final model, instead of reusing their results.
    #[arg(long)]
    pub reevaluate: bool,
}

fn train_cmd(run: &PlannedRun, backend: Option<&str>, extra: &[String]) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("own path"));
    c.arg("train").arg(&run.pipeline).args(["--progress", "quiet"]);
    for s in run.sets.iter().chain(extra) {
        c.args(["--set", s]);
    }
    if let Some(b) = backend {
        c.args(["--backend", b]);
    }
    c
}

/// Evaluate a finished run's final model with the study's current pipeline and put that
/// evaluation into its `summary.json` (the previous one is kept as `summary.before-reevaluate.json`).
fn reevaluate(run: &PlannedRun, backend: Option<&str>) -> Result<(), String> {
    let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    c.arg("eval").arg(&run.pipeline).arg("--checkpoint").arg(run.out.join("model.safetensors")).arg("--json");
    for s in &run.sets {
        c.args(["--set", s]);
    }
    if let Some(b) = backend {
        c.args(["--backend", b]);
    }
    let out = c.stderr(Stdio::inherit()).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("npe eval failed ({})", out.status));
    }
    let eval: npe_core::train::EvalOutput = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let path = run.out.join("summary.json");
    let before = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut summary: Summary = serde_json::from_slice(&before).map_err(|e| format!("{}: {e}", path.display()))?;
    summary.eval = eval.eval;
    let keep = run.out.join("summary.before-reevaluate.json");
    if !keep.exists() {
        npe_core::checkpoint::write_atomic(&keep, &before).map_err(|e| e.to_string())?;
    }
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| e.to_string())?;
    npe_core::checkpoint::write_atomic(&path, &json).map_err(|e| e.to_string())
}

fn read_summary(dir: &Path) -> Option<Summary> {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).ok()?).ok()
}

/// Seconds to train every unfinished run, from one short probe run of each pipeline: two
/// epochs of 5 steps, timed on the second (the first pays for start-up), plus its evaluations
/// (inference taken as 2.5× the training speed).
fn estimate(pending: &[&PlannedRun], backend: Option<&str>, ext: &Extensions) -> Option<f64> {
    let mut total = 0.0;
    // Per pipeline: training speed, training and test images (of the probe's settings).
    let mut ips_of: std::collections::BTreeMap<PathBuf, (f64, f64, f64)> = Default::default();
    for run in pending {
        if !ips_of.contains_key(&run.pipeline) {
            let dir = tempfile::tempdir().ok()?;
            let probe =
                ["train.epochs=2".to_string(), "train.max_steps_per_epoch=5".into(), "eval.every_epochs=1000".into()];
            let status = train_cmd(run, backend, &probe)
                .arg("--out")
                .arg(dir.path())
                .stderr(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .ok()?;
            let s = read_summary(dir.path()).filter(|_| status.success())?;
            let records = std::fs::read_to_string(dir.path().join("metrics.jsonl")).ok()?;
            let second = records.lines().nth(1).and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok());
            let ips = second.and_then(|r| r["images_per_second"].as_f64()).unwrap_or(s.images_per_second);
            ips_of.insert(run.pipeline.clone(), (ips, s.data.train_images as f64, s.data.test_images as f64));
        }
        let (ips, train, test) = ips_of[&run.pipeline];
        let ips = ips.max(1e-9);
        let set = SetArgs { sets: run.sets.clone() };
        let ir = load_ir(&run.pipeline, &set, &ext.registry).ok()?.1;
        let evals = (ir.train.epochs / ir.eval.every_epochs.max(1) + 1) as f64;
        let eval_images = test + (ir.eval.prior_train_samples as f64).min(train);
        total += ir.train.epochs as f64 * train / ips + evals * eval_images / (2.5 * ips);
    }
    Some(total)
}

fn hms(s: f64) -> String {
    let s = s.round() as u64;
    format!("{}h {:02}min", s / 3600, (s % 3600) / 60)
}

pub(crate) fn run(args: StudyArgs, ext: &Extensions) -> ExitCode {
    let spec = match StudySpec::load(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let root = args.root.join(&spec.name);
    let plan = spec.plan(&root);
    let backend = spec.backend.clone().or(args.backend.clone());
    // Every run's pipeline must be valid before anything trains.
    for run in &plan {
        if load_ir(&run.pipeline, &SetArgs { sets: run.sets.clone() }, &ext.registry).is_err() {
            eprintln!("error: run `{}` (seed {}) is not a valid pipeline (see above)", run.row, run.seed);
            return ExitCode::from(EXIT_INVALID);
        }
    }
    if let Some(bad) = args.only.iter().find(|o| !spec.runs.contains_key(*o)) {
        let known: Vec<&str> = spec.runs.keys().map(String::as_str).collect();
        eprintln!("error: --only {bad}: the study has no run `{bad}` (runs: {})", known.join(", "));
        return ExitCode::from(EXIT_INVALID);
    }
    let selected =
        |r: &PlannedRun| args.only.is_empty() || args.only.iter().any(|o| r.row.split(' ').next() == Some(o));
    let states: Vec<RunState> = plan.iter().map(|r| study::state(&r.out)).collect();
    let todo: Vec<&PlannedRun> =
        plan.iter().zip(&states).filter(|(r, s)| **s != RunState::Done && selected(r)).map(|(r, _)| r).collect();
    if args.dry_run {
        println!("study `{}`: {} runs in {}", spec.name, plan.len(), root.display());
        for (r, s) in plan.iter().zip(&states) {
            println!(
                "  {:<12} {:<28} seed {:<3} {}",
                format!("{s:?}").to_lowercase(),
                r.row,
                r.seed,
                r.pipeline.display()
            );
        }
        match estimate(&todo, backend.as_deref(), ext) {
            Some(t) => println!(
                "{} to train: about {} on one job, {} with --jobs {} (from a 2 × 5-step probe of each pipeline)",
                todo.len(),
                hms(t),
                hms(t / args.jobs.max(1) as f64),
                args.jobs.max(1)
            ),
            None => println!("{} to train (the timing probe failed; run one to see why)", todo.len()),
        }
        return ExitCode::SUCCESS;
    }
    if let Err(e) = std::fs::create_dir_all(&root) {
        eprintln!("error: cannot create {}: {e}", root.display());
        return ExitCode::from(EXIT_FAILURE);
    }
    if args.reevaluate {
        for (run, _) in plan.iter().zip(&states).filter(|(r, s)| **s == RunState::Done && selected(r)) {
            match reevaluate(run, backend.as_deref()) {
                Ok(()) => eprintln!("re-evaluated {} seed {}", run.row, run.seed),
                Err(e) => {
                    eprintln!("error: re-evaluating {}: {e}", run.out.display());
                    return ExitCode::from(EXIT_FAILURE);
                }
            }
        }
    }
    let queue = Mutex::new(todo.clone().into_iter().enumerate());
    let failed = Mutex::new(vec![]);
    let n = todo.len();
    std::thread::scope(|s| {
        for _ in 0..args.jobs.max(1) {
            s.spawn(|| {
                loop {
                    let Some((i, run)) = queue.lock().unwrap().next() else { break };
                    let log = root.join(format!("{}.log", run.out.file_name().unwrap().to_string_lossy()));
                    let resume = study::state(&run.out) == RunState::Interrupted;
                    let mut cmd = train_cmd(run, backend.as_deref(), &[]);
                    cmd.arg("--out").arg(&run.out);
                    if resume {
                        cmd.arg("--resume");
                    }
                    let status =
                        std::fs::File::create(&log).and_then(|f| cmd.stdout(f.try_clone()?).stderr(f).status());
                    let ok = status.as_ref().is_ok_and(|s| s.success());
                    let what = match read_summary(&run.out).filter(|_| ok) {
                        Some(s) => {
                            let acc = s.eval.accuracy.values().next().and_then(|o| o.values().last());
                            let seg = s.eval.segmentation.values().next().and_then(|o| o.values().last());
                            let m = acc.map(|a| a.mean_per_class).or(seg.map(|m| m.miou));
                            format!("done{}", m.map_or(String::new(), |m| format!(", last output {:.2}%", 100.0 * m)))
                        }
                        None => {
                            failed.lock().unwrap().push(run.out.clone());
                            format!("FAILED (see {})", log.display())
                        }
                    };
                    eprintln!(
                        "[{}/{n}] {} seed {}{}: {what}",
                        i + 1,
                        run.row,
                        run.seed,
                        if resume { " (resumed)" } else { "" }
                    );
                }
            });
        }
    });
    let finished: Vec<(PlannedRun, Summary)> =
        plan.iter().filter_map(|r| read_summary(&r.out).map(|s| (r.clone(), s))).collect();
    let rows = study::aggregate(&finished);
    let header = format!(
        "## {}\n\n{}Generated by `npe study {}` on {} CPU cores; {} of {} runs finished. Percentages are mean ± sample std over seeds {:?} of the metric on the test split (classification: mean per-class accuracy on the balanced split, and its head/medium/tail groups; segmentation: mIoU and the tail classes' mIoU); prior r / slope are seed means of the fit against the true training prior (Pearson r, slope of the log-prior; 1 = calibrated) of the PEMs' learned prior and of the prior the classifier implies (its mean softmax over unlabelled training images); fitted scale: `npe_la`'s `scale: auto`.\n\nData: {}\n\n",
        spec.name,
        spec.description.as_deref().map_or(String::new(), |d| format!("{d}\n\n")),
        args.file.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        finished.len(),
        plan.len(),
        spec.seeds,
        rows.first().map_or("—".into(), |r| r.data.clone()),
    );
    let md = format!("{header}{}", study::markdown(&rows));
    let charts = study_charts(&rows);
    for (stem, svg) in &charts {
        npe_core::train::plot::write_svg_and_png(&root, stem, svg);
    }
    let html = html_report(&spec.name, &md, &charts, &finished);
    let json = serde_json::to_vec_pretty(&rows).expect("rows serialize");
    for (name, bytes) in [
        ("results.md", md.as_bytes()),
        ("results.csv", study::csv(&rows).as_bytes()),
        ("results.json", &json[..]),
        ("report.html", html.as_bytes()),
    ] {
        if let Err(e) = npe_core::checkpoint::write_atomic(&root.join(name), bytes) {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    }
    println!("{md}");
    println!("wrote {}/results.{{md,csv,json}} and report.html", root.display());
    let failed = failed.into_inner().unwrap();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: {} run(s) failed; rerun the same command to retry them (finished runs are kept)",
            failed.len()
        );
        ExitCode::from(EXIT_FAILURE)
    }
}

/// Across-run charts: every row's mean (± std over seeds), and its tail, grouped by run, as
/// `(file stem, SVG)`.
fn study_charts(rows: &[study::Row]) -> Vec<(&'static str, String)> {
    use npe_core::train::plot::{Bar, grouped_bars};
    let stat = |xs: &[f64]| study::stat(xs).map_or((0.0, 0.0), |(m, sd)| (100.0 * m, 100.0 * sd));
    let chart = |pick: &dyn Fn(&study::Row) -> &[f64], what: &str| {
        let mut groups: Vec<(String, Vec<Bar>)> = vec![];
        for r in rows.iter().filter(|r| !pick(r).is_empty()) {
            let (mean, std) = stat(pick(r));
            let bar = Bar { series: r.output.clone(), mean, std };
            match groups.iter_mut().find(|g| g.0 == r.row) {
                Some(g) => g.1.push(bar),
                None => groups.push((r.row.clone(), vec![bar])),
            }
        }
        let metric = rows.first().map_or("", |r| r.metric.as_str());
        (!groups.is_empty())
            .then(|| grouped_bars(format!("{what} {metric} (%), mean ± std over seeds").trim_start(), "%", &groups))
    };
    [("chart_mean", chart(&|r| &r.mean_per_class, "")), ("chart_tail", chart(&|r| &r.tail, "tail"))]
        .into_iter()
        .filter_map(|(n, svg)| Some((n, svg?)))
        .collect()
}

/// A self-contained page: the table, across-run charts and every run's plots (inlined SVG).
fn html_report(name: &str, md: &str, charts: &[(&str, String)], runs: &[(PlannedRun, Summary)]) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut rows = String::new();
    for line in md.lines().filter(|l| l.starts_with('|') && !l.starts_with("|:")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        rows.push_str(&format!(
            "<tr>{}</tr>\n",
            cells.iter().map(|c| format!("<td>{}</td>", esc(c))).collect::<String>()
        ));
    }
    let mut plots = String::new();
    for (r, _) in runs {
        plots.push_str(&format!("<h3>{} — seed {}</h3>\n<div class=\"plots\">", esc(&r.row), r.seed));
        for f in ["curves.svg", "per_class.svg", "prior.svg"] {
            if let Ok(svg) = std::fs::read_to_string(r.out.join(f)) {
                plots.push_str(&format!("<div>{svg}</div>"));
            }
        }
        plots.push_str("</div>\n");
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>npe study {n}</title><style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td{{border:1px solid #ccc;padding:4px 8px;text-align:right}}tr:first-child td{{font-weight:bold}}.plots{{display:flex;flex-wrap:wrap;gap:1em}}</style></head><body><h1>npe study {n}</h1><table>{rows}</table><h2>Across runs</h2>{charts}<h2>Runs</h2>{plots}</body></html>\n",
        n = esc(name),
        charts = format!(
            "<div class=\"plots\">{}</div>",
            charts.iter().map(|(_, svg)| format!("<div>{svg}</div>")).collect::<String>()
        )
    )
}
