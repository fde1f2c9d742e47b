//! `source: drive`: DRIVE retinal vessels (Staal et al. 2004), 20 training and 20 test images
//! of 565×584 in the official layout (`root` is the folder holding `training/` and `test/`, or
//! its parent holding `DRIVE/`):
//! `training/images/NN_training.tif`, `training/1st_manual/NN_manual1.gif`,
//! `training/mask/NN_training_mask.gif`, and the same under `test/` with `NN_test.tif`,
//! `NN_test_mask.gif`. Labels outside the field-of-view masks are ignored and the class prior
//! counts only pixels inside them (`drive.fov: false` counts every pixel).

use crate::data::dataset::{Dataset, MaskMap, Masks, Pixels, Provenance, Split};
use crate::data::error::{DataError, Result};
use crate::data::fov::Fov;
use crate::data::seg::{decode_mask, decode_rgb};
use crate::data::source::{Loaded, Located, Native, SourceDef};
use crate::spec::DataSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn yes() -> bool {
    true
}

/// `data.drive`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DriveSpec {
    /// Evaluate and count the prior inside the field-of-view masks (`mask/`). Default true.
    #[serde(default = "yes")]
    pub fov: bool,
}

impl Default for DriveSpec {
    fn default() -> Self {
        Self { fov: true }
    }
}

/// The source.
pub struct Drive;

impl SourceDef for Drive {
    const NAME: &'static str = "drive";
    const SUMMARY: &'static str =
        "DRIVE retinal vessels (training/images/NN_training.tif + 1st_manual/*.gif + mask/*.gif), inside the field of view";
    const SEGMENTATION: bool = true;
    const HAS_OPTIONS: bool = true;
    type Options = DriveSpec;

    fn native(_: &DriveSpec, _: &DataSpec) -> std::result::Result<Native, Located> {
        Ok(Native { channels: 3, size: Some([584, 565]), classes: Some(2) })
    }
    fn load(s: &DriveSpec, spec: &DataSpec, root: &Path, _seed: u64) -> Result<Loaded> {
        load_drive(s, spec, root).map(Loaded::Pixels)
    }
}

const HINT: &str = "DRIVE is at https://drive.grand-challenge.org (registration): unzip it and pass `--set data.root=PATH`, the folder holding `training/` and `test/`";

/// One image's files.
struct Sample {
    image: PathBuf,
    label: PathBuf,
    mask: PathBuf,
}

/// The samples of `split` (`training` or `test`) under `base`, sorted by number.
fn samples(base: &Path, split: &str) -> Result<Vec<Sample>> {
    let dir = base.join(split);
    let images_dir = dir.join("images");
    let suffix = format!("_{split}.tif");
    let rd = std::fs::read_dir(&images_dir).map_err(|_| DataError::Missing {
        what: format!("DRIVE {split} images folder"),
        path: images_dir.clone(),
        hint: HINT.into(),
    })?;
    let mut numbers: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(&suffix)).map(String::from))
        .collect();
    numbers.sort();
    if numbers.is_empty() {
        return Err(DataError::Missing {
            what: format!("DRIVE images (NN{suffix})"),
            path: images_dir,
            hint: HINT.into(),
        });
    }
    let mut out = vec![];
    for nn in numbers {
        let image = images_dir.join(format!("{nn}{suffix}"));
        let label = dir.join("1st_manual").join(format!("{nn}_manual1.gif"));
        let mask = dir.join("mask").join(format!("{nn}_{split}_mask.gif"));
        for (what, p) in [("vessel label", &label), ("field-of-view mask", &mask)] {
            if !p.is_file() {
                return Err(DataError::Missing {
                    what: format!("{what} for {}", image.display()),
                    path: p.clone(),
                    hint: "every DRIVE image needs its `1st_manual/NN_manual1.gif` and `mask/NN_<split>_mask.gif`".into(),
                });
            }
        }
        out.push(Sample { image, label, mask });
    }
    Ok(out)
}

/// Decode every file of `samples` once (a truncated file fails now, naming it, not mid-epoch),
/// check the sizes, and count the labelled pixels (inside the field of view when `fov`).
fn check_and_count(samples: &[Sample], fov: bool) -> Result<Vec<u64>> {
    let mut counts = vec![0u64; 2];
    for s in samples {
        let (h, w, _) = decode_rgb(&s.image)?;
        let (lh, lw, label) = decode_mask(&s.label)?;
        let (mh, mw, mask) = decode_mask(&s.mask)?;
        for (what, p, (a, b)) in [("label map", &s.label, (lh, lw)), ("field-of-view mask", &s.mask, (mh, mw))] {
            if (a, b) != (h, w) {
                return Err(DataError::Invalid(format!(
                    "{}: {what} is {a}×{b} but its image {} is {h}×{w}",
                    p.display(),
                    s.image.display()
                )));
            }
        }
        for (v, m) in label.into_iter().zip(mask) {
            if !fov || m > 127 {
                counts[MaskMap::Binary.apply(v) as usize] += 1;
            }
        }
    }
    Ok(counts)
}

fn split_of(samples: &[Sample], fov: bool) -> Split {
    let paths = |f: &dyn Fn(&Sample) -> PathBuf| Arc::new(samples.iter().map(f).collect::<Vec<_>>());
    let mut s = Split::new(
        Pixels::Files { paths: paths(&|s| s.image.clone()), channels: 3 },
        vec![0; samples.len()],
        Some(Masks::Files(paths(&|s| s.label.clone()))),
    );
    s.mask_map = MaskMap::Binary;
    if fov {
        s.fov = Fov::Files(paths(&|s| s.mask.clone()));
    }
    s
}

fn load_drive(s: &DriveSpec, spec: &DataSpec, root: &Path) -> Result<Dataset> {
    let base = if root.join("DRIVE/training").is_dir() { root.join("DRIVE") } else { root.to_path_buf() };
    if !base.join("training").is_dir() {
        let stare = std::fs::read_dir(root).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("stare-images")))
        });
        return Err(DataError::Missing {
            what: "DRIVE `training/` folder".into(),
            path: base.join("training"),
            hint: if stare { "this looks like a STARE folder: use `data.source: stare`".into() } else { HINT.into() },
        });
    }
    let train = samples(&base, "training")?;
    let test = samples(&base, "test")?;
    let counts = check_and_count(&train, s.fov)?;
    check_and_count(&test, s.fov)?;
    let fov = if s.fov { "inside the FOV masks" } else { "every pixel" };
    Ok(Dataset {
        name: format!("DRIVE (1st manual, {fov})"),
        origin: base.display().to_string(),
        provenance: Provenance::Real,
        classes: vec!["background".into(), "vessel".into()],
        train: split_of(&train, s.fov),
        test: split_of(&test, s.fov),
        channels: 3,
        train_counts: counts,
        ignore_index: spec.ignore_index,
        skipped_files: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::seg::testing::{first_batch, load_at, spec};

    /// An LZW-compressed RGB TIFF, as DRIVE's images are.
    fn write_tiff(path: &Path, w: u32, h: u32, px: &[u8]) {
        let f = std::fs::File::create(path).unwrap();
        let mut enc =
            tiff::encoder::TiffEncoder::new(f).unwrap().with_compression(tiff::encoder::Compression::Lzw);
        enc.write_image::<tiff::encoder::colortype::RGB8>(w, h, px).unwrap();
    }

    fn write_gif(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u8) {
        let img = image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]));
        image::DynamicImage::ImageLuma8(img).into_rgba8().save_with_format(path, image::ImageFormat::Gif).unwrap();
    }

    /// DRIVE's layout with `n` images per split of `w×h`: the field of view is the left half
    /// (x < w/2), the vessel is column 1 and column w−2 (one inside, one outside).
    fn write_drive(root: &Path, n: usize, (w, h): (u32, u32)) {
        for split in ["training", "test"] {
            for d in ["images", "1st_manual", "mask"] {
                std::fs::create_dir_all(root.join(split).join(d)).unwrap();
            }
            let first = if split == "training" { 21 } else { 1 };
            for i in first..first + n {
                let px: Vec<u8> = (0..w * h).flat_map(|p| [(p % w) as u8, (p / w) as u8, i as u8]).collect();
                write_tiff(&root.join(format!("{split}/images/{i:02}_{split}.tif")), w, h, &px);
                write_gif(&root.join(format!("{split}/1st_manual/{i:02}_manual1.gif")), w, h, |x, _| {
                    if x == 1 || x == w - 2 { 255 } else { 0 }
                });
                write_gif(&root.join(format!("{split}/mask/{i:02}_{split}_mask.gif")), w, h, |x, _| {
                    if x < w / 2 { 255 } else { 0 }
                });
            }
        }
    }

    #[test]
    fn drive_layout_reads_with_the_prior_inside_the_masks() {
        let d = tempfile::tempdir().unwrap();
        write_drive(d.path(), 3, (8, 6));
        let ds = load_at(&spec("{source: drive}"), d.path(), 0).unwrap();
        assert_eq!((ds.train.len(), ds.test.len(), ds.classes.len()), (3, 3, 2));
        // Inside (x < 4): 4 columns × 6 rows per image, of which column 1 is vessel.
        assert_eq!(ds.train_counts, vec![3 * 3 * 6, 3 * 6]);
        let b = first_batch(&ds, &ds.test, [6, 8]);
        assert_eq!(&b.labels[..8], &[0, 1, 0, 0, 255, 255, 255, 255], "outside the mask is unlabelled");
        // The TIFF's pixels: R = x, G = y.
        assert!((b.images[3] - 3.0 / 255.0).abs() < 1e-6);
        let all = load_at(&spec("{source: drive, drive: {fov: false}}"), d.path(), 0).unwrap();
        assert_eq!(all.train_counts, vec![3 * 6 * 6, 3 * 2 * 6]);
        // `root` may also be the parent of `DRIVE/`.
        let p = tempfile::tempdir().unwrap();
        write_drive(&p.path().join("DRIVE"), 1, (8, 6));
        assert_eq!(load_at(&spec("{source: drive}"), p.path(), 0).unwrap().train.len(), 1);
    }

    #[test]
    fn drive_errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        write_drive(d.path(), 2, (8, 6));
        let s = spec("{source: drive}");
        std::fs::remove_file(d.path().join("test/mask/02_test_mask.gif")).unwrap();
        let e = load_at(&s, d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("field-of-view mask for") && e.contains("02_test_mask.gif"), "{e}");
        write_drive(d.path(), 2, (8, 6));
        write_gif(&d.path().join("training/1st_manual/22_manual1.gif"), 4, 6, |_, _| 0);
        let e = load_at(&s, d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("22_manual1.gif: label map is 6×4 but its image") && e.contains("is 6×8"), "{e}");
        write_drive(d.path(), 2, (8, 6));
        let tif = d.path().join("training/images/21_training.tif");
        let bytes = std::fs::read(&tif).unwrap();
        std::fs::write(&tif, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_at(&s, d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("21_training.tif"), "a truncated TIFF is named: {e}");
        std::fs::write(&tif, b"not a tiff at all").unwrap();
        let e = load_at(&s, d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("21_training.tif"), "{e}");
        let stare = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(stare.path().join("stare-images")).unwrap();
        let e = load_at(&s, stare.path(), 0).unwrap_err().to_string();
        assert!(e.contains("looks like a STARE folder") && e.contains("source: stare"), "{e}");
    }
}
