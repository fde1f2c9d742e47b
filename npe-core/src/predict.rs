//! Applying a trained model to new images (`npe predict`): the images are preprocessed exactly
//! as evaluation preprocesses the test split (resize, centre crop, normalisation, channels),
//! the model runs in inference mode, and every requested output (raw logits and each
//! adjuster: NPE-LA, `scale: auto`, `predicted`, post-hoc LA) is read. Calibrations come from
//! the run's `calibration.json` ([`Calibrations`]); no training data is read.

use crate::backend::{Backend, Device, ExecError, Executor, Request};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::data::augment::Transform;
use crate::data::loader::{Loader, LoaderOptions};
use crate::data::{Pixels, Split};
use crate::ir::Ir;
use crate::nodes::{Accuracy, Iou};
use crate::registry::Registry;
use crate::train::calibrations::Calibrations;
use crate::types::Category;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What can go wrong predicting.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The model file.
    #[error(transparent)]
    Model(#[from] CheckpointError),
    /// The model does not fit the pipeline.
    #[error("{model}: {message}")]
    Mismatch {
        /// Model file.
        model: PathBuf,
        /// What differs.
        message: String,
    },
    /// An output needs a calibration the run did not store.
    #[error(
        "output `{node}` needs its calibration from unlabelled training images, which {run} does not hold\n  hint: {hint}"
    )]
    Uncalibrated {
        /// The adjuster.
        node: String,
        /// Where it was looked for.
        run: String,
        /// The command that computes it.
        hint: String,
    },
    /// An output that is not in the pipeline.
    #[error("unknown output `{name}`; outputs of this pipeline: {known}")]
    UnknownOutput {
        /// Asked for.
        name: String,
        /// The heads and adjusters there are.
        known: String,
    },
    /// Reading or decoding an image.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The backend.
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// One image's predictions.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The image file.
    pub file: PathBuf,
    /// Output → its class probabilities (softmax), `[C]` for classification or `[C, H, W]`
    /// for segmentation.
    pub probabilities: BTreeMap<String, Vec<f32>>,
    /// Segmentation: `[h, w]` of the maps; classification: `[1, 1]`.
    pub size: [usize; 2],
    /// The preprocessed image, de-normalised to 8-bit interleaved `h×w×c` (segmentation
    /// overlays; empty for classification).
    pub image: Vec<u8>,
}

impl Prediction {
    /// Per pixel (or the one) argmax class of `output`.
    pub fn argmax(&self, output: &str) -> Vec<usize> {
        let p = &self.probabilities[output];
        let px = self.size[0] * self.size[1];
        let c = p.len() / px;
        // The first of equal maxima, as the backends' argmax and ONNX's ArgMax take.
        (0..px).map(|i| (0..c).fold(0, |best, k| if p[k * px + i] > p[best * px + i] { k } else { best })).collect()
    }

    /// The `k` most probable classes of a classification output, with their probabilities.
    pub fn top_k(&self, output: &str, k: usize) -> Vec<(usize, f32)> {
        let p = &self.probabilities[output];
        let mut idx: Vec<usize> = (0..p.len()).collect();
        idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        idx.into_iter().take(k).map(|i| (i, p[i])).collect()
    }
}

/// A model ready to predict.
pub struct Predictor {
    /// The pipeline.
    pub ir: Ir,
    exec: Box<dyn Executor>,
    /// Class names in label order.
    pub classes: Vec<String>,
    transform: Transform,
    channels: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
}

/// What the model takes: evaluation's preprocessing of the pipeline's data.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// Image channels.
    pub channels: usize,
    /// `[h, w]` after resize and crop.
    pub size: [usize; 2],
    /// Normalisation mean per channel (of `x / 255`).
    pub mean: Vec<f32>,
    /// Normalisation std per channel.
    pub std: Vec<f32>,
}

impl InputSpec {
    /// The input of `ir`'s model.
    pub fn of(ir: &Ir) -> Result<Self, crate::data::DataError> {
        let sig = crate::data::describe(&ir.data_spec)
            .map_err(|(p, m)| crate::data::DataError::Invalid(format!("{p}: {m}")))?;
        let channels = sig.image.channels;
        let (mean, std) = match &ir.data_spec.normalize {
            Some(n) => (n.mean.clone(), n.std.clone()),
            None => crate::data::default_normalization(&ir.data_spec.source, channels),
        };
        Ok(InputSpec { channels, size: sig.image.spatial.expect("images are maps"), mean, std })
    }
}

/// The outputs a pipeline evaluates (its first `accuracy` or `iou` evaluator's inputs), the
/// default of `npe predict`.
pub fn evaluated_outputs(ir: &Ir) -> Vec<String> {
    let acc = ir.nodes_of::<Accuracy>().map(|(_, a)| a.inputs.iter().map(|i| i.node.clone()).collect::<Vec<_>>());
    let iou = ir.nodes_of::<Iou>().map(|(_, a)| a.inputs.iter().map(|i| i.node.clone()).collect::<Vec<_>>());
    acc.chain(iou).next().unwrap_or_default()
}

/// The model of `ir` on `backend` with `model`'s weights and the stored calibrations (`calib`,
/// from `run`, named in errors) of every adjuster in `outputs`: what `npe predict` and
/// `npe export` run.
pub fn load_model(
    ir: &Ir,
    model: &Path,
    calib: Option<&Calibrations>,
    run: &str,
    outputs: &[String],
    (registry, backend, device): (&Registry, &dyn Backend, Device),
) -> Result<Box<dyn Executor>, PredictError> {
    let known: Vec<String> = ir
        .ops()
        .filter(|(_, op)| matches!(op.category(), Category::Head | Category::Adjuster))
        .map(|(n, _)| n.name.clone())
        .collect();
    for o in outputs {
        if !known.contains(o) {
            return Err(PredictError::UnknownOutput { name: o.clone(), known: known.join(", ") });
        }
    }
    let classes = ir.num_classes();
    let class_prior = match calib {
        Some(c) if c.train_counts.len() == classes => c.class_prior(),
        _ => vec![1.0 / classes as f64; classes],
    };
    let ctx = crate::model::build_context(ir, registry, device, class_prior);
    let params = ctx.params.clone();
    let mut exec = crate::exec::build(backend, ir, &ctx)?;
    let ck = Checkpoint::load(model)?;
    if ck.fingerprint != crate::checkpoint::fingerprint(&params) {
        return Err(PredictError::Mismatch {
            model: model.into(),
            message: "its parameters are not this pipeline's (another architecture or class count)".into(),
        });
    }
    exec.import(&ck.params)?;
    let needed = crate::train::calibrated_nodes(ir);
    for o in outputs.iter().filter(|o| needed.contains(o)) {
        let Some(c) = calib.and_then(|c| c.adjusters.get(o)) else {
            return Err(PredictError::Uncalibrated {
                node: o.clone(),
                run: run.into(),
                hint: format!(
                    "`npe train` stores it in the run's {}; for this model run `npe eval PIPELINE --checkpoint {}` on its training data, or leave `{o}` out of --outputs",
                    crate::train::calibrations::FILE,
                    model.display()
                ),
            });
        };
        let v = c
            .vector
            .as_ref()
            .map(|v| crate::backend::HostTensor { shape: vec![v.len()], data: v.iter().map(|&x| x as f32).collect() });
        exec.set_calibration(o, v.as_ref(), c.scale)?;
    }
    Ok(exec)
}

impl Predictor {
    /// Build the model of `ir` on `backend` ([`load_model`]) with evaluation's preprocessing.
    pub fn new(
        ir: Ir,
        model: &Path,
        calib: Option<&Calibrations>,
        run: &str,
        outputs: &[String],
        on: (&Registry, &dyn Backend, Device),
    ) -> Result<Self, PredictError> {
        let exec = load_model(&ir, model, calib, run, outputs, on)?;
        let classes = ir.num_classes();
        let input = InputSpec::of(&ir)?;
        let transform = Transform::new(
            &ir.data_spec.augment,
            false,
            &input.mean,
            &input.std,
            input.size,
            ir.data_spec.ignore_index,
        );
        let (channels, mean, std) = (input.channels, input.mean, input.std);
        Ok(Predictor {
            classes: (0..classes).map(|i| format!("class_{i}")).collect(),
            ir,
            exec,
            transform,
            channels,
            mean,
            std,
        })
    }

    /// Name the classes (from the run's calibrations or data report).
    pub fn with_classes(mut self, names: &[String]) -> Self {
        if names.len() == self.classes.len() {
            self.classes = names.to_vec();
        }
        self
    }

    /// Predict `outputs` for `files`, `batch_size` at a time; `progress(done)` after each batch.
    pub fn predict(
        &mut self,
        files: &[PathBuf],
        outputs: &[String],
        batch_size: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Prediction>, PredictError> {
        let split = Split::new(
            Pixels::Files { paths: Arc::new(files.to_vec()), channels: self.channels },
            vec![0; files.len()],
            None,
        );
        let opts = LoaderOptions {
            batch_size: batch_size.max(1),
            shuffle: false,
            drop_last: false,
            seed: self.ir.seed,
            workers: self.ir.data_spec.loader.workers,
            prefetch: self.ir.data_spec.loader.prefetch,
            stream: 2,
        };
        let loader = Loader::new(split, self.transform.clone(), self.channels, opts);
        let requests: Vec<Request> = outputs.iter().map(|o| Request::Output(o.clone())).collect();
        let dense = self.ir.data.is_dense();
        let mut out = Vec::with_capacity(files.len());
        for batch in loader.iter(0, 0) {
            let batch = batch?;
            let [n, c, h, w] = batch.shape;
            let answers = self.exec.infer(&batch, &requests)?;
            for i in 0..n {
                let mut probabilities = BTreeMap::new();
                for (o, t) in outputs.iter().zip(&answers) {
                    let per = t.data.len() / n;
                    probabilities
                        .insert(o.clone(), softmax(&t.data[i * per..(i + 1) * per], if dense { h * w } else { 1 }));
                }
                let image = if dense {
                    self.denormalise(&batch.images[i * c * h * w..(i + 1) * c * h * w], [h, w])
                } else {
                    vec![]
                };
                let file = files[batch.indices[i] as usize].clone();
                out.push(Prediction { file, probabilities, size: if dense { [h, w] } else { [1, 1] }, image });
            }
            progress(out.len());
        }
        Ok(out)
    }

    /// The images of `files` whose size, after the pipeline's resize and centre crop, is not
    /// the model's input (they would be centre-cropped or padded, as evaluation would): the
    /// file and its `[h, w]` (read from the header; unreadable files are left to `predict`).
    pub fn size_mismatches(&self, files: &[PathBuf]) -> Vec<(PathBuf, [usize; 2])> {
        let a = &self.ir.data_spec.augment;
        let want = self.transform.out;
        files
            .iter()
            .filter_map(|f| {
                let (w, h) = image::ImageReader::open(f).ok()?.with_guessed_format().ok()?.into_dimensions().ok()?;
                let (h, w) = (h as usize, w as usize);
                let mut size = [h, w];
                if let Some(r) = a.resize {
                    size = if h <= w { [r, (w * r).div_ceil(h).max(r)] } else { [(h * r).div_ceil(w).max(r), r] };
                }
                let mut padded = false;
                if let Some(c) = a.center_crop {
                    padded = size[0] < c || size[1] < c;
                    size = [c, c];
                }
                (padded || size != want).then(|| (f.clone(), [h, w]))
            })
            .collect()
    }

    /// `[c, h, w]` normalised floats back to interleaved 8-bit pixels.
    fn denormalise(&self, chw: &[f32], [h, w]: [usize; 2]) -> Vec<u8> {
        let c = self.channels;
        let mut px = vec![0u8; h * w * c];
        for ch in 0..c {
            for i in 0..h * w {
                let v = (chw[ch * h * w + i] * self.std[ch] + self.mean[ch]) * 255.0;
                px[i * c + ch] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
        px
    }
}

/// Softmax over classes of `[C, P]` logits (`P` pixels; 1 for classification).
fn softmax(logits: &[f32], pixels: usize) -> Vec<f32> {
    let c = logits.len() / pixels.max(1);
    let mut out = vec![0f32; logits.len()];
    for p in 0..pixels {
        let max = (0..c).map(|k| logits[k * pixels + p]).fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = (0..c).map(|k| (logits[k * pixels + p] - max).exp()).sum();
        for k in 0..c {
            out[k * pixels + p] = (logits[k * pixels + p] - max).exp() / sum;
        }
    }
    out
}

/// The image files of `inputs`: files as given, folders recursively (image extensions,
/// sorted), and list files (`.txt`/`.lst`: the first field of each line, relative to the
/// list's folder).
pub fn collect_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, crate::data::DataError> {
    const IMAGES: [&str; 9] = ["jpg", "jpeg", "png", "ppm", "pgm", "bmp", "tif", "tiff", "gif"];
    let is_image = |p: &Path| {
        p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGES.contains(&e.to_ascii_lowercase().as_str()))
    };
    let mut out = vec![];
    for input in inputs {
        if input.is_dir() {
            let mut found = crate::data::seg::find_files_to_depth(input, 32, &|n: &str| is_image(Path::new(n)));
            out.append(&mut found);
        } else if input.extension().is_some_and(|e| e == "txt" || e == "lst") {
            let text = std::fs::read_to_string(input).map_err(|e| crate::data::DataError::io(input, e))?;
            let base = input.parent().unwrap_or(Path::new("."));
            out.extend(text.lines().filter_map(|l| l.split_whitespace().next()).map(|f| base.join(f)));
        } else if input.is_file() {
            out.push(input.clone());
        } else {
            return Err(crate::data::DataError::Missing {
                what: "input image, folder or list file".into(),
                path: input.clone(),
                hint: "give image files, folders of images, or .txt list files".into(),
            });
        }
    }
    Ok(out)
}

/// A colour per class (0, background, is left clear in overlays).
fn colour(c: usize) -> [u8; 3] {
    const P: [[u8; 3]; 8] = [
        [0, 0, 0],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
    ];
    if c < P.len() { P[c] } else { [(c * 67 % 256) as u8, (c * 151 % 256) as u8, (c * 37 % 256) as u8] }
}

/// Segmentation: `DIR/<stem>.<output>.png` (class indices), `….overlay.png`, and
/// `DIR/fractions.jsonl` (per image and output, the share of pixels of each class).
pub fn write_maps(preds: &[Prediction], outputs: &[String], classes: &[String], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut fractions = std::io::BufWriter::new(std::fs::File::create(dir.join("fractions.jsonl"))?);
    for p in preds {
        let [h, w] = p.size;
        let stem = p.file.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
        let c = p.image.len() / (h * w).max(1);
        for o in outputs {
            let map = p.argmax(o);
            let png = |name: String, img: image::DynamicImage| {
                img.save(dir.join(name)).map_err(|e| std::io::Error::other(e.to_string()))
            };
            let labels: Vec<u8> = map.iter().map(|&k| k.min(255) as u8).collect();
            png(
                format!("{stem}.{o}.png"),
                image::GrayImage::from_raw(w as u32, h as u32, labels).expect("h×w").into(),
            )?;
            let overlay: Vec<u8> = (0..h * w)
                .flat_map(|i| {
                    let base: [u8; 3] =
                        if c == 3 { [p.image[3 * i], p.image[3 * i + 1], p.image[3 * i + 2]] } else { [p.image[i]; 3] };
                    let k = map[i];
                    let col = colour(k);
                    std::array::from_fn::<u8, 3, _>(|j| {
                        if k == 0 { base[j] } else { ((base[j] as u16 + col[j] as u16) / 2) as u8 }
                    })
                })
                .collect();
            png(
                format!("{stem}.{o}.overlay.png"),
                image::RgbImage::from_raw(w as u32, h as u32, overlay).expect("h×w×3").into(),
            )?;
            let mut share = vec![0f64; classes.len()];
            for &k in &map {
                share[k] += 1.0 / map.len() as f64;
            }
            let named: serde_json::Map<String, serde_json::Value> =
                classes.iter().zip(&share).map(|(n, s)| (n.clone(), serde_json::json!(s))).collect();
            writeln!(
                fractions,
                "{}",
                serde_json::json!({"file": p.file.display().to_string(), "output": o, "fractions": named})
            )?;
        }
    }
    fractions.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_per_pixel_and_top_k() {
        // 2 classes × 2 pixels.
        let p = softmax(&[0.0, 2.0, 0.0, 0.0], 2);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[2] - 0.5).abs() < 1e-6);
        assert!((p[1] - 1.0 / (1.0 + (-2f32).exp())).abs() < 1e-6);
        let pred = Prediction {
            file: "x".into(),
            probabilities: [("o".to_string(), p.clone())].into(),
            size: [1, 2],
            image: vec![],
        };
        assert_eq!(pred.argmax("o"), vec![0, 0], "a tie goes to the first class");
        let c = Prediction { size: [1, 1], probabilities: [("o".to_string(), vec![0.1, 0.7, 0.2])].into(), ..pred };
        assert_eq!(c.top_k("o", 2), vec![(1, 0.7), (2, 0.2)]);
    }
}
