//! `npe study STUDY.yaml`: run a grid of pipelines × variants × seeds (finished runs reused,
//! interrupted ones resumed, `--jobs` at once) and write the table: mean ± std over seeds as
//! Markdown, CSV and JSON, and an HTML report with every run's plots.

use super::{EXIT_FAILURE, EXIT_INVALID, SetArgs, load_ir};
use crate::Extensions;
use npe_core::error::Result;
use npe_core::report::Summary;
use npe_core::report::study::{self, PlannedRun, RunState, StudySpec};
use npe_core::report::study_report;
use npe_core::train::fingerprint::RunFingerprint;
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
    /// Retrain runs whose pipeline, flags, backend or data changed since they ran (their old
    /// folders are kept as `<run>.stale-N`). Without it, a study with stale runs stops and
    /// names what changed.
    #[arg(long)]
    pub rerun_stale: bool,
    /// Write the tables and report from the runs as they are (finished ones, and the
    /// prior-over-training records of those in progress); train nothing.
    #[arg(long)]
    pub report_only: bool,
    /// Evaluate finished runs again with the study's current pipelines (e.g. after adding an
    /// adjuster or evaluator), from their final model, instead of reusing their results.
    #[arg(long)]
    pub reevaluate: bool,
}

fn train_cmd(run: &PlannedRun, backend: Option<&str>, extra: &[String]) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("own path"));
    super::child::dies_with_parent(&mut c);
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
fn reevaluate(run: &PlannedRun, backend: Option<&str>, now: &RunFingerprint) -> Result<()> {
    let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    super::child::dies_with_parent(&mut c);
    c.arg("eval").arg(&run.pipeline).arg("--checkpoint").arg(run.out.join("model.safetensors")).arg("--json");
    for s in &run.sets {
        c.args(["--set", s]);
    }
    if let Some(b) = backend {
        c.args(["--backend", b]);
    }
    let out = c.stderr(Stdio::inherit()).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("npe eval failed ({})", out.status).into());
    }
    let eval: npe_core::report::EvalOutput = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let path = run.out.join("summary.json");
    let before = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut summary: Summary = serde_json::from_slice(&before).map_err(|e| format!("{}: {e}", path.display()))?;
    summary.eval = eval.eval;
    let keep = run.out.join("summary.before-reevaluate.json");
    if !keep.exists() {
        npe_core::checkpoint::write_atomic(&keep, &before).map_err(|e| e.to_string())?;
    }
    npe_core::report::summary::write_summary(&run.out, &summary).map_err(|e| e.to_string())?;
    // Its evaluation is now the study's (its training was checked to be).
    now.write(&run.out)
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
            // The schedule is replaced: a recipe's milestones (160, 180) are invalid for 2 epochs,
            // and the schedule does not change the speed.
            let probe = [
                "train.epochs=2".to_string(),
                "train.max_steps_per_epoch=5".into(),
                "eval.every_epochs=1000".into(),
                "train.schedule:={kind: cosine}".into(),
            ];
            let status = train_cmd(run, backend, &probe)
                .arg("--out")
                .arg(dir.path())
                .stderr(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .ok()?;
            let s = study_report::read_summary(dir.path()).filter(|_| status.success())?;
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

/// Hold an exclusive lock on the study's folder for the life of this process (the OS drops it
/// if the process dies), so a second `npe study` on the same study is refused, not interleaved.
fn lock_study(root: &Path) -> Result<std::fs::File> {
    super::lock::lock_folder(root, ".npe-study.lock", || {
        format!(
            "another `npe study` is running this study ({})\n  hint: wait for it to finish (its runs' logs are in that folder), then run this again",
            root.display()
        )
    })
}

/// The state of every planned run, after two checks. A run whose `summary.json` is unreadable
/// is said so loudly and finished again (the bad file kept as `summary.json.broken`). A run
/// whose recorded settings differ from the plan's is stale: with `rerun_stale` its folder is
/// set aside (`<run>.stale-N`) and it is trained anew; otherwise the study stops naming the
/// changes (a dry run only lists them).
fn check_runs(
    plan: &[PlannedRun],
    now: &[RunFingerprint],
    rerun_stale: bool,
    dry_run: bool,
    reevaluated: &dyn Fn(&PlannedRun) -> bool,
) -> Result<Vec<RunState>, ExitCode> {
    let mut states = vec![];
    let mut stale = vec![];
    for (run, fp) in plan.iter().zip(now) {
        let mut state = study::state(&run.out);
        if state == RunState::Broken && !dry_run {
            let why = std::fs::read(run.out.join("summary.json"))
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    serde_json::from_slice::<Summary>(&b).map_err(|e| format!("unreadable: {e}"))?;
                    match npe_core::report::summary::summary_matches_checksum(&run.out, &b) {
                        Some(false) => Err(format!(
                            "edited after training: it no longer matches {}",
                            npe_core::report::summary::SUMMARY_CHECKSUM
                        )
                        .into()),
                        _ => Ok(()),
                    }
                })
                .err()
                .unwrap_or_default();
            let _ = std::fs::rename(run.out.join("summary.json"), run.out.join("summary.json.broken"));
            eprintln!(
                "warning: {} seed {}: summary.json is {why}; kept as summary.json.broken, and the run is finished again from its checkpoints",
                run.row, run.seed
            );
            state = study::state(&run.out);
        }
        if matches!(state, RunState::Done | RunState::Interrupted) {
            // A finished run about to be re-evaluated only needs its training to match.
            let training_only = state == RunState::Done && reevaluated(run);
            let changes = stale_changes(run, fp, training_only);
            if !changes.is_empty() {
                if rerun_stale {
                    match set_aside(&run.out, "stale") {
                        Ok(to) => eprintln!(
                            "{} seed {} is stale ({}); its folder is kept as {}, and it is trained anew",
                            run.row,
                            run.seed,
                            changes.join("; "),
                            to.display()
                        ),
                        Err(e) => {
                            eprintln!("error: cannot set {} aside: {e}", run.out.display());
                            return Err(ExitCode::from(EXIT_FAILURE));
                        }
                    }
                    state = RunState::Pending;
                } else {
                    stale.push((run, changes));
                    state = RunState::Stale;
                }
            }
        }
        states.push(state);
    }
    if !stale.is_empty() {
        let report: Vec<String> = stale
            .iter()
            .map(|(r, c)| format!("  {} seed {} ({}):\n    {}", r.row, r.seed, r.out.display(), c.join("\n    ")))
            .collect();
        let lead = if dry_run { "note" } else { "error" };
        eprintln!(
            "{lead}: {} finished or started run(s) no longer match the study (stale):\n{}\n  hint: add --rerun-stale to train them anew (their folders are kept as <run>.stale-N), or undo the changes",
            stale.len(),
            report.join("\n")
        );
        if !dry_run {
            return Err(ExitCode::from(EXIT_INVALID));
        }
    }
    Ok(states)
}

/// What differs between what a run's folder ran and what the study would run now: its
/// fingerprint's changes, or, for runs from before fingerprints were recorded, its pipeline
/// file, `--set` flags and backend (from `pipeline.yaml` and `run.json`).
fn stale_changes(run: &PlannedRun, now: &RunFingerprint, training_only: bool) -> Vec<String> {
    match RunFingerprint::read(&run.out) {
        Ok(Some(recorded)) if training_only => return recorded.training_changes(now),
        Ok(Some(recorded)) => return recorded.changes(now),
        Err(e) => return vec![format!("its fingerprint is unreadable: {e}")],
        Ok(None) => {}
    }
    let run_json: Option<serde_json::Value> =
        std::fs::read(run.out.join("run.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let Some(rj) = run_json else {
        return vec!["it has neither fingerprint.json nor a readable run.json: what it ran is unknown".into()];
    };
    let mut out = vec![];
    let sets: Vec<String> = rj["set"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    if sets != run.sets {
        let gone: Vec<&String> = sets.iter().filter(|s| !run.sets.contains(s)).collect();
        let new: Vec<&String> = run.sets.iter().filter(|s| !sets.contains(s)).collect();
        out.push(format!(
            "--set flags: {gone:?} → {new:?}{}",
            if gone.is_empty() && new.is_empty() { " (order)" } else { "" }
        ));
    }
    if !rj["backend"].as_str().is_some_and(|b| b.starts_with(&now.backend)) {
        out.push(format!("backend: {} → {}", rj["backend"], now.backend));
    }
    let then = std::fs::read_to_string(run.out.join("pipeline.yaml")).ok();
    let current = std::fs::read_to_string(&run.pipeline).ok();
    if then.is_none() || then != current {
        out.push(format!("the pipeline file {} differs from the run's pipeline.yaml", run.pipeline.display()));
    }
    out
}

/// Rename `dir` to `<dir>.<what>-N` (the first N free); the new path.
fn set_aside(dir: &Path, what: &str) -> std::io::Result<PathBuf> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let to =
        (1..).map(|n| dir.with_file_name(format!("{name}.{what}-{n}"))).find(|p| !p.exists()).expect("a free name");
    std::fs::rename(dir, &to)?;
    Ok(to)
}

fn hms(s: f64) -> String {
    let s = s.round() as u64;
    format!("{}h {:02}min", s / 3600, (s % 3600) / 60)
}

pub(crate) fn run(args: StudyArgs, ext: &Extensions) -> ExitCode {
    match study(args, ext) {
        Ok(code) | Err(code) => code,
    }
}

/// `npe study` in its steps; `Err` is an early exit with its message already printed.
fn study(args: StudyArgs, ext: &Extensions) -> Result<ExitCode, ExitCode> {
    let spec = StudySpec::load(&args.file).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_INVALID)
    })?;
    let root = args.root.join(&spec.name);
    let plan = spec.plan(&root);
    let backend = spec.backend.clone().or(args.backend.clone());
    let fingerprints = fingerprints(&plan, backend.as_deref(), ext)?;
    // One `npe study` at a time on a study's folder.
    // (A dry run and --report-only write no run: they may look at a study that is running.)
    let looks_only = args.dry_run || args.report_only;
    let _lock = if looks_only { None } else { Some(lock_study(&root).map_err(fail(EXIT_FAILURE))?) };
    if let Some(bad) = args.only.iter().find(|o| !spec.runs.iter().any(|(l, _)| l == *o)) {
        let known: Vec<&str> = spec.runs.iter().map(|(l, _)| l.as_str()).collect();
        eprintln!("error: --only {bad}: the study has no run `{bad}` (runs: {})", known.join(", "));
        return Err(ExitCode::from(EXIT_INVALID));
    }
    let selected =
        |r: &PlannedRun| args.only.is_empty() || args.only.iter().any(|o| r.row.split(' ').next() == Some(o));
    let reevaluated = |r: &PlannedRun| args.reevaluate && selected(r);
    let states = check_runs(&plan, &fingerprints, args.rerun_stale && !looks_only, looks_only, &reevaluated)?;
    let todo = training_order(&plan, &states, &selected);
    if args.dry_run {
        print_plan(&spec, &root, &plan, &states, &todo, backend.as_deref(), args.jobs, ext);
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&root).map_err(|e| fail(EXIT_FAILURE)(format!("cannot create {}: {e}", root.display())))?;
    if args.reevaluate {
        for (i, run) in plan.iter().enumerate().filter(|(i, r)| states[*i] == RunState::Done && selected(r)) {
            reevaluate(run, backend.as_deref(), &fingerprints[i])
                .map_err(|e| fail(EXIT_FAILURE)(format!("re-evaluating {}: {e}", run.out.display())))?;
            eprintln!("re-evaluated {} seed {}", run.row, run.seed);
        }
    }
    let todo = if args.report_only { vec![] } else { todo };
    let write = || study_report::write_tables(&spec, &args.file, &plan, &states, &root);
    let failed = train_all(&todo, args.jobs, &root, backend.as_deref(), &write);
    let md = write().map_err(fail(EXIT_FAILURE))?;
    println!("{md}");
    println!("wrote {}/results.{{md,csv,json}} and report.html", root.display());
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {} run(s) failed; rerun the same command to retry them (finished runs are kept)",
            failed.len()
        );
        Ok(ExitCode::from(EXIT_FAILURE))
    }
}

/// Print `error: <message>` and give `code`.
fn fail<E: std::fmt::Display>(code: u8) -> impl Fn(E) -> ExitCode {
    move |m| {
        eprintln!("error: {m}");
        ExitCode::from(code)
    }
}

/// What each run would run now; every run's pipeline must be valid before anything trains.
fn fingerprints(plan: &[PlannedRun], backend: Option<&str>, ext: &Extensions) -> Result<Vec<RunFingerprint>, ExitCode> {
    let name = backend
        .map(String::from)
        .or_else(|| crate::backends::BackendChoice::default_compiled().map(|b| b.to_string()))
        .unwrap_or_default();
    plan.iter()
        .map(|run| match load_ir(&run.pipeline, &SetArgs { sets: run.sets.clone() }, &ext.registry) {
            Ok((_, ir)) => Ok(RunFingerprint::of(&ir, &name)),
            Err(_) => {
                eprintln!("error: run `{}` (seed {}) is not a valid pipeline (see above)", run.row, run.seed);
                Err(ExitCode::from(EXIT_INVALID))
            }
        })
        .collect()
}

/// The selected runs still to train, interrupted ones first, then seed by seed (every run's
/// seed 0 before any seed 1), in the file's order.
fn training_order<'a>(
    plan: &'a [PlannedRun],
    states: &[RunState],
    selected: &dyn Fn(&PlannedRun) -> bool,
) -> Vec<&'a PlannedRun> {
    let mut todo: Vec<(&PlannedRun, RunState)> =
        plan.iter().zip(states).filter(|(r, s)| **s != RunState::Done && selected(r)).map(|(r, s)| (r, *s)).collect();
    todo.sort_by_key(|(r, s)| (*s != RunState::Interrupted, r.seed));
    todo.into_iter().map(|(r, _)| r).collect()
}

/// `--dry-run`: every run's state and a time estimate from a short probe.
#[allow(clippy::too_many_arguments)]
fn print_plan(
    spec: &StudySpec,
    root: &Path,
    plan: &[PlannedRun],
    states: &[RunState],
    todo: &[&PlannedRun],
    backend: Option<&str>,
    jobs: usize,
    ext: &Extensions,
) {
    println!("study `{}`: {} runs in {}", spec.name, plan.len(), root.display());
    for (r, s) in plan.iter().zip(states) {
        println!("  {:<12} {:<28} seed {:<3} {}", format!("{s:?}").to_lowercase(), r.row, r.seed, r.pipeline.display());
    }
    let jobs = jobs.max(1);
    match estimate(todo, backend, ext) {
        Some(t) => println!(
            "{} to train: about {} on one job, {} with --jobs {jobs} (from a 2 × 5-step probe of each pipeline)",
            todo.len(),
            hms(t),
            hms(t / jobs as f64),
        ),
        None => println!("{} to train (the timing probe failed; run one to see why)", todo.len()),
    }
}

/// Train `todo` on `jobs` workers, each run an `npe train` child logging to `<run>.log`
/// (resumed when interrupted), the tables rewritten after each; the runs that failed.
fn train_all(
    todo: &[&PlannedRun],
    jobs: usize,
    root: &Path,
    backend: Option<&str>,
    write_tables: &(dyn Fn() -> Result<String> + Sync),
) -> Vec<PathBuf> {
    let queue = Mutex::new(todo.iter().enumerate());
    let failed = Mutex::new(vec![]);
    let tables = Mutex::new(());
    let n = todo.len();
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let Some((i, run)) = queue.lock().unwrap().next() else { break };
                    let resume = study::state(&run.out) == RunState::Interrupted;
                    let (ok, what) = train_one(run, resume, root, backend);
                    if !ok {
                        failed.lock().unwrap().push(run.out.clone());
                    }
                    let resumed = if resume { " (resumed)" } else { "" };
                    eprintln!("[{}/{n}] {} seed {}{resumed}: {what}", i + 1, run.row, run.seed);
                    // The tables so far, so a study stopped between runs still has them.
                    let _guard = tables.lock().unwrap();
                    if let Err(e) = write_tables() {
                        eprintln!("warning: could not write the tables so far: {e}");
                    }
                }
            });
        }
    });
    failed.into_inner().unwrap()
}

/// One run as an `npe train` child: whether it finished, and what to say of it.
fn train_one(run: &PlannedRun, resume: bool, root: &Path, backend: Option<&str>) -> (bool, String) {
    let log = root.join(format!("{}.log", run.out.file_name().unwrap().to_string_lossy()));
    let mut cmd = train_cmd(run, backend, &[]);
    cmd.arg("--out").arg(&run.out);
    if resume {
        cmd.arg("--resume");
    }
    let status = std::fs::File::create(&log).and_then(|f| cmd.stdout(f.try_clone()?).stderr(f).status());
    let ok = status.as_ref().is_ok_and(|s| s.success());
    match study_report::read_summary(&run.out).filter(|_| ok) {
        Some(s) => {
            let acc = s.eval.accuracy.values().next().and_then(|o| o.values().last());
            let seg = s.eval.segmentation.values().next().and_then(|o| o.values().last());
            let m = acc.map(|a| a.mean_per_class).or(seg.map(|m| m.miou));
            (true, format!("done{}", m.map_or(String::new(), |m| format!(", last output {:.2}%", 100.0 * m))))
        }
        None => (false, format!("FAILED (see {})", log.display())),
    }
}
