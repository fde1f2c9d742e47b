//! `npe export RUN_DIR|MODEL --format onnx`: the model with NPE-LA and the other adjusters
//! inside the graph, as an ONNX file with a dynamic batch dimension.

use super::predict::{Trained, trained};
use super::{EXIT_FAILURE, EXIT_INVALID, SetArgs};
use crate::Extensions;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Onnx,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ExportArgs {
    /// A run folder (model.safetensors, pipeline.yaml, run.json, calibration.json), or a model
    /// file with `--pipeline`.
    pub model: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "onnx")]
    pub format: Format,
    /// The pipeline the model was trained with (default: the run folder's).
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    #[command(flatten)]
    pub set: SetArgs,
    /// Graph outputs, comma-separated (default: every output the pipeline evaluates).
    #[arg(long, value_delimiter = ',')]
    pub outputs: Vec<String>,
    /// ONNX operator set (npe writes 17).
    #[arg(long, default_value_t = npe_core::export::OPSET)]
    pub opset: i64,
    /// The file to write (default: `model.onnx` beside the model).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

pub(crate) fn run(args: ExportArgs, ext: &Extensions) -> ExitCode {
    if args.opset != npe_core::export::OPSET {
        eprintln!("error: npe writes ONNX opset {} (asked for {})", npe_core::export::OPSET, args.opset);
        return ExitCode::from(EXIT_INVALID);
    }
    let Trained { ir, model, calib, run, outputs } =
        match trained(&args.model, args.pipeline.as_deref(), &args.set, &args.outputs, ext) {
            Ok(t) => t,
            Err(code) => return code,
        };
    let bytes = match npe_core::export::onnx(&ir, &model, calib.as_ref(), &run, &outputs, &ext.registry) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let out = args.output.unwrap_or_else(|| model.with_file_name("model.onnx"));
    if let Err(e) = npe_core::checkpoint::write_atomic(&out, &bytes) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    println!(
        "{}: {} outputs ({}), {:.1} MB, opset {}",
        out.display(),
        outputs.len(),
        outputs.join(", "),
        bytes.len() as f64 / 1e6,
        args.opset
    );
    ExitCode::SUCCESS
}
