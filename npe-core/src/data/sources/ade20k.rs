//! `source: ade20k`: ADE20K SceneParsing (`ADEChallengeData2016/images/{training,validation}/`
//! + `annotations/…`), 150 classes with reduce-zero-label (0, "other", is ignored).

use crate::data::dataset::{Dataset, MaskMap, Masks, Pixels, Provenance, Split};
use crate::data::error::{DataError, Result};
use crate::data::seg::decode_mask;
use crate::data::source::{Loaded, Located, Native, NoOptions, SourceDef};
use crate::spec::DataSpec;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The source.
pub struct Ade20k;

impl SourceDef for Ade20k {
    const NAME: &'static str = "ade20k";
    const SUMMARY: &'static str = "ADE20K (ADEChallengeData2016/images/... + annotations/...), 150 classes";
    const SEGMENTATION: bool = true;
    type Options = NoOptions;

    fn native(_: &NoOptions, _: &DataSpec) -> std::result::Result<Native, Located> {
        Ok(Native { channels: 3, size: None, classes: Some(ADE_CLASSES) })
    }
    fn load(_: &NoOptions, spec: &DataSpec, root: &Path, _seed: u64) -> Result<Loaded> {
        load_ade(spec, root).map(Loaded::Pixels)
    }
}

const ADE_CLASSES: usize = 150;

fn load_ade(spec: &DataSpec, root: &Path) -> Result<Dataset> {
    let hint = "download ADEChallengeData2016.zip (http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip), unzip it and pass `--set data.root=PATH` (the folder holding ADEChallengeData2016, or that folder itself)";
    let base =
        if root.join("ADEChallengeData2016").is_dir() { root.join("ADEChallengeData2016") } else { root.to_path_buf() };
    let split = |name: &str| -> Result<Split> {
        let img_dir = base.join("images").join(name);
        let ann_dir = base.join("annotations").join(name);
        for d in [&img_dir, &ann_dir] {
            if !d.is_dir() {
                return Err(DataError::Missing { what: "ADE20K folder".into(), path: d.clone(), hint: hint.into() });
            }
        }
        let mut images: Vec<PathBuf> = std::fs::read_dir(&img_dir)
            .map_err(|e| DataError::io(&img_dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("jpg")))
            .collect();
        images.sort();
        if images.is_empty() {
            return Err(DataError::Missing { what: "ADE20K images (*.jpg)".into(), path: img_dir, hint: hint.into() });
        }
        let mut anns = Vec::with_capacity(images.len());
        for img in &images {
            let ann = ann_dir.join(img.with_extension("png").file_name().expect("file name"));
            if !ann.is_file() {
                return Err(DataError::Missing {
                    what: format!("annotation for {}", img.display()),
                    path: ann,
                    hint: "each images/<split>/X.jpg needs annotations/<split>/X.png".into(),
                });
            }
            anns.push(ann);
        }
        let n = images.len();
        let mut s = Split::new(
            Pixels::Files { paths: Arc::new(images), channels: 3 },
            vec![0; n],
            Some(Masks::Files(Arc::new(anns))),
        );
        s.mask_map = MaskMap::ReduceZero { ignore: spec.ignore_index };
        Ok(s)
    };
    let train = split("training")?;
    let test = split("validation")?;
    // Pixel frequencies of the training annotations (reduce-zero-label applied).
    let map = train.mask_map;
    let Some(Masks::Files(paths)) = &train.masks else { unreachable!("ADE20K splits have mask files") };
    let mut counts = vec![0u64; ADE_CLASSES];
    for p in paths.iter() {
        let (_, _, m) = decode_mask(p)?;
        for v in m {
            let c = map.apply(v) as usize;
            if c < ADE_CLASSES {
                counts[c] += 1;
            } else if c != spec.ignore_index as usize {
                return Err(DataError::LabelRange {
                    file: p.clone(),
                    index: 0,
                    label: v as i64,
                    classes: ADE_CLASSES + 1,
                });
            }
        }
    }
    Ok(Dataset {
        name: "ADE20K (SceneParsing, 150 classes)".into(),
        origin: base.display().to_string(),
        provenance: Provenance::Real,
        classes: (0..ADE_CLASSES).map(|i| format!("class_{i}")).collect(),
        train,
        test,
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

    /// ADE20K layout: `ADEChallengeData2016/{images,annotations}/{training,validation}/`.
    fn write_ade(dir: &Path, n: usize, max_label: u8) {
        let base = dir.join("ADEChallengeData2016");
        for split in ["training", "validation"] {
            std::fs::create_dir_all(base.join("images").join(split)).unwrap();
            std::fs::create_dir_all(base.join("annotations").join(split)).unwrap();
            for i in 0..n {
                let stem = format!("ADE_{split}_{i:08}");
                image::RgbImage::from_pixel(16, 8, image::Rgb([100, 50, 25]))
                    .save(base.join("images").join(split).join(format!("{stem}.jpg")))
                    .unwrap();
                let ann = image::GrayImage::from_fn(16, 8, |x, _| image::Luma([(x as u8 % (max_label + 1))]));
                ann.save(base.join("annotations").join(split).join(format!("{stem}.png"))).unwrap();
            }
        }
    }

    #[test]
    fn ade20k_reduces_zero_label() {
        let d = tempfile::tempdir().unwrap();
        write_ade(d.path(), 2, 3);
        let ds = load_at(&spec("{source: ade20k}"), d.path(), 0).unwrap();
        assert_eq!((ds.classes.len(), ds.train.len(), ds.test.len()), (150, 2, 2));
        // Values 0,1,2,3 repeat along x: 0 is ignored, 1..3 become classes 0..2.
        assert_eq!(&ds.train_counts[..4], &[2 * 32, 2 * 32, 2 * 32, 0]);
        let b = first_batch(&ds, &ds.test, [8, 16]);
        assert_eq!(&b.labels[..5], &[255, 0, 1, 2, 255]);
    }

    #[test]
    fn ade20k_errors() {
        let d = tempfile::tempdir().unwrap();
        write_ade(d.path(), 1, 3);
        let base = d.path().join("ADEChallengeData2016");
        std::fs::remove_file(base.join("annotations/training/ADE_training_00000000.png")).unwrap();
        let e = load_at(&spec("{source: ade20k}"), d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("annotation for") && e.contains("ADE_training_00000000.jpg"), "{e}");
        write_ade(d.path(), 1, 3);
        image::GrayImage::from_pixel(16, 8, image::Luma([200]))
            .save(base.join("annotations/training/ADE_training_00000000.png"))
            .unwrap();
        let e = load_at(&spec("{source: ade20k}"), d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("label 200") && e.contains("ADE_training_00000000.png"), "{e}");
        let e = load_at(&spec("{source: ade20k}"), &d.path().join("missing"), 0).unwrap_err().to_string();
        assert!(e.contains("ADEChallengeData2016.zip"), "{e}");
    }
}
