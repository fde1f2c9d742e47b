//! `npe predict RUN_DIR|MODEL INPUTS...`: apply a trained model to new images. Classification:
//! the top-k classes of every requested output per image (table, JSON lines or CSV).
//! Segmentation: a PNG of class indices and a colour overlay per image and output, and the
//! class pixel fractions.

use super::session::{BackendArgs, backend};
use super::{EXIT_FAILURE, EXIT_INVALID, SetArgs, load_ir};
use crate::Extensions;
use npe_core::error::Result;
use npe_core::predict::{Prediction, Predictor, collect_inputs, evaluated_outputs};
use npe_core::train::calibrations::Calibrations;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct PredictArgs {
    /// A run folder (its model.safetensors, pipeline.yaml, run.json and calibration.json), or a
    /// model file with `--pipeline`.
    pub model: PathBuf,
    /// Image files, folders (searched recursively) or list files (.txt: a path per line).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The pipeline the model was trained with (default: the run folder's).
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    #[command(flatten)]
    pub set: SetArgs,
    /// Outputs to report, comma-separated (default: every output the pipeline evaluates).
    #[arg(long, value_delimiter = ',')]
    pub outputs: Vec<String>,
    /// Classes listed per image and output.
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    /// Where results go: FILE.jsonl or FILE.csv (classification; default: a table on stdout),
    /// or a folder of PNGs (segmentation; default `predictions/`).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Images per batch (default: the pipeline's `eval.batch_size`).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// An unreadable image: `fail` (the error names it) or `skip` (listed at the end).
    #[arg(long, value_enum, default_value = "fail")]
    pub on_corrupt: OnCorrupt,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnCorrupt {
    Fail,
    Skip,
}

/// A trained model as `npe predict` and `npe export` take it: its pipeline, model file,
/// stored calibrations, the run folder (for messages) and the outputs asked for.
pub(super) struct Trained {
    pub ir: npe_core::ir::Ir,
    pub model: PathBuf,
    pub calib: Option<Calibrations>,
    pub run: String,
    pub outputs: Vec<String>,
}

/// The trained model `model` (a run folder, or a model file with `pipeline`) names, with the
/// `outputs` asked for (default: those the pipeline evaluates); errors are reported.
pub(super) fn trained(
    model: &Path,
    pipeline: Option<&Path>,
    extra: &SetArgs,
    outputs: &[String],
    ext: &Extensions,
) -> Result<Trained, ExitCode> {
    let (pipeline, sets, model, calib, run) = locate(model, pipeline, extra).map_err(|m| {
        eprintln!("error: {m}");
        ExitCode::from(EXIT_INVALID)
    })?;
    let (_, ir) = load_ir(&pipeline, &sets, &ext.registry)?;
    let outputs = if outputs.is_empty() { evaluated_outputs(&ir) } else { outputs.to_vec() };
    Ok(Trained { ir, model, calib, run, outputs })
}

type Located = (PathBuf, SetArgs, PathBuf, Option<Calibrations>, String);

/// The pipeline (and its `--set` flags), model file, calibrations and run folder `model` names.
fn locate(model: &Path, pipeline: Option<&Path>, extra: &SetArgs) -> Result<Located> {
    let is_run = model.is_dir();
    let (model, run_dir) = if is_run {
        (model.join("model.safetensors"), model.to_path_buf())
    } else {
        (model.to_path_buf(), model.parent().map(Path::to_path_buf).unwrap_or_default())
    };
    if !model.is_file() {
        return Err(format!(
            "{} not found{}",
            model.display(),
            if is_run {
                ": the run has not finished (train it to the end, or pass a checkpoint with --pipeline)"
            } else {
                ""
            }
        )
        .into());
    }
    let mut sets = vec![];
    let pipeline = match (pipeline, is_run) {
        (Some(p), _) => p.to_path_buf(),
        (None, true) => {
            let run: serde_json::Value = std::fs::read(run_dir.join("run.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            sets = run["set"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect();
            run_dir.join("pipeline.yaml")
        }
        (None, false) => return Err("a model file needs --pipeline (the pipeline it was trained with)".into()),
    };
    sets.extend(extra.sets.iter().cloned());
    let calib = Calibrations::for_model(&model, &run_dir).ok();
    Ok((pipeline, SetArgs { sets }, model, calib, run_dir.display().to_string()))
}

pub(crate) fn run(args: PredictArgs, ext: &Extensions) -> ExitCode {
    let Trained { ir, model, calib, run, outputs } =
        match trained(&args.model, args.pipeline.as_deref(), &args.set, &args.outputs, ext) {
            Ok(t) => t,
            Err(code) => return code,
        };
    let batch_size = args.batch_size.unwrap_or(ir.eval.batch_size);
    let (choice, device) = match (args.backend.choice(), args.backend.device()) {
        (Ok(c), Ok(d)) => (c, d),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let b = backend(choice);
    let predictor = Predictor::new(ir, &model, calib.as_ref(), &run, &outputs, (&ext.registry, b.as_ref(), device));
    let mut predictor = match predictor {
        Ok(p) => p.with_classes(calib.as_ref().map_or(&[][..], |c| &c.classes)),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let files = match collect_inputs(&args.inputs) {
        Ok(f) if f.is_empty() => {
            eprintln!("error: no image files in {:?}", args.inputs);
            return ExitCode::from(EXIT_INVALID);
        }
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let (files, skipped) = if args.on_corrupt == OnCorrupt::Skip { readable(files) } else { (files, vec![]) };
    let odd = predictor.size_mismatches(&files);
    if let Some((f, [h, w])) = odd.first() {
        let [oh, ow] = predictor.ir.data.image.spatial.unwrap_or([0, 0]);
        eprintln!(
            "warning: {} of {} images (e.g. {}, {w}×{h}) do not come out at the model's {ow}×{oh} input after the pipeline's resize and centre crop: they are centre-cropped or padded, as evaluation would\n  hint: --set data.augment.resize=N (and center_crop) if they should be scaled",
            odd.len(),
            files.len(),
            f.display()
        );
    }
    let bar = progress_bar(files.len(), batch_size);
    let predictions = predictor.predict(&files, &outputs, batch_size, &mut |done| bar.set_position(done as u64));
    bar.finish_and_clear();
    let predictions = match predictions {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}\n  hint: --on-corrupt skip leaves unreadable images out");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let written = if predictor.ir.data.is_dense() {
        let dir = args.output.clone().unwrap_or_else(|| PathBuf::from("predictions"));
        npe_core::predict::write_maps(&predictions, &outputs, &predictor.classes, &dir).map(|_| Some(dir))
    } else {
        write_classes(&predictions, &outputs, &predictor.classes, args.top_k, args.output.as_deref()).map(|_| None)
    };
    match written {
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
        Ok(Some(dir)) => {
            eprintln!("wrote {} label maps and overlays to {}", predictions.len() * outputs.len(), dir.display())
        }
        Ok(None) => {}
    }
    for (p, why) in &skipped {
        eprintln!("skipped unreadable image {}: {why}", p.display());
    }
    ExitCode::SUCCESS
}

/// The files that decode, and the others with the reason.
fn readable(files: Vec<PathBuf>) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let (mut ok, mut bad) = (vec![], vec![]);
    for f in files {
        match npe_core::data::folder::decode(&f, 3) {
            Ok(_) => ok.push(f),
            Err(e) => bad.push((f, e.to_string())),
        }
    }
    (ok, bad)
}

fn progress_bar(files: usize, batch: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if files <= batch || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(files as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("predict {bar:30} {pos}/{len} images, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// Classification: a table on stdout, or JSON lines / CSV by the file's extension.
fn write_classes(
    preds: &[Prediction],
    outputs: &[String],
    classes: &[String],
    k: usize,
    to: Option<&Path>,
) -> std::io::Result<()> {
    let ext = to.and_then(|p| p.extension()).and_then(|e| e.to_str()).unwrap_or("");
    let mut w: Box<dyn Write> = match to {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => Box::new(std::io::stdout().lock()),
    };
    match (to.is_some(), ext) {
        (true, "csv") => {
            writeln!(w, "file,output,rank,class,index,probability")?;
            for p in preds {
                for o in outputs {
                    for (r, (c, prob)) in p.top_k(o, k).into_iter().enumerate() {
                        writeln!(
                            w,
                            "{},{o},{},{},{c},{prob:.6}",
                            csv(&p.file.display().to_string()),
                            r + 1,
                            csv(&classes[c])
                        )?;
                    }
                }
            }
        }
        (true, _) => {
            for p in preds {
                let per: serde_json::Map<String, serde_json::Value> = outputs
                    .iter()
                    .map(|o| {
                        let top: Vec<_> = p
                            .top_k(o, k)
                            .into_iter()
                            .map(|(c, prob)| serde_json::json!({"class": classes[c], "index": c, "probability": prob}))
                            .collect();
                        (o.clone(), serde_json::Value::Array(top))
                    })
                    .collect();
                writeln!(w, "{}", serde_json::json!({"file": p.file.display().to_string(), "outputs": per}))?;
            }
        }
        (false, _) => {
            for p in preds {
                writeln!(w, "{}", p.file.display())?;
                for o in outputs {
                    let top: Vec<String> = p
                        .top_k(o, k)
                        .into_iter()
                        .map(|(c, prob)| format!("{} {:.1}%", classes[c], 100.0 * prob))
                        .collect();
                    writeln!(w, "  {o:<12} {}", top.join(", "))?;
                }
            }
        }
    }
    w.flush()
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}
