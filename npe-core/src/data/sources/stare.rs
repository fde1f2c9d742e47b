//! `source: stare`: STARE retinal vessels (Hoover et al. 2000), `im0001.ppm[.gz]` images with
//! `im0001.ah.ppm[.gz]` (or `.vk.`) label maps anywhere under `root` (the layout of
//! `stare-images.tar` + `labels-ah.tar`). STARE ships no field-of-view masks: `stare.fov` derives
//! the usual one from the red channel.

use crate::data::dataset::{Dataset, MaskMap, Masks, Pixels, Provenance, Split};
use crate::data::error::{DataError, Result};
use crate::data::fov::{self, Fov, RedThreshold};
use crate::data::seg::{decode_mask, decode_rgb, find_files};
use crate::data::source::{Loaded, Located, Native, SourceDef};
use crate::spec::DataSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Whose vessel labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Annotator {
    /// Adam Hoover (`im0001.ah.ppm`).
    #[default]
    Ah,
    /// Valentina Kouznetsova (`im0001.vk.ppm`).
    Vk,
}

fn default_train() -> usize {
    10
}

/// `data.stare`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StareSpec {
    /// Whose vessel labels: `ah` (default) or `vk`.
    #[serde(default)]
    pub annotator: Annotator,
    /// The first this many images (sorted by name) are the training split, the rest the test
    /// split. Default 10 (of 20).
    #[serde(default = "default_train")]
    pub train_images: usize,
    /// Field of view derived from the red channel (`fov: {red_above: 45, erode: 3}`; `{}` takes
    /// those defaults): labels outside it are ignored and the prior counts pixels inside it.
    /// Default: none, every pixel counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fov: Option<RedThreshold>,
}

impl Default for StareSpec {
    fn default() -> Self {
        Self { annotator: Annotator::Ah, train_images: default_train(), fov: None }
    }
}

/// The source.
pub struct Stare;

impl SourceDef for Stare {
    const NAME: &'static str = "stare";
    const SUMMARY: &'static str = "STARE retinal vessels (im0001.ppm + im0001.ah.ppm), optional derived field of view";
    const SEGMENTATION: bool = true;
    const HAS_OPTIONS: bool = true;
    type Options = StareSpec;

    fn native(_: &StareSpec, _: &DataSpec) -> std::result::Result<Native, Located> {
        Ok(Native { channels: 3, size: Some([605, 700]), classes: Some(2) })
    }
    fn load(s: &StareSpec, spec: &DataSpec, root: &Path, _seed: u64) -> Result<Loaded> {
        load_stare(s, spec, root).map(Loaded::Pixels)
    }
}

fn stem_of(p: &Path) -> String {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.trim_end_matches(".gz").trim_end_matches(".ppm").to_string()
}

const HINT: &str = "STARE is at https://cecas.clemson.edu/~ahoover/stare/ (stare-images.tar, labels-ah.tar): unpack both under one folder and pass `--set data.root=PATH`";

fn load_stare(s: &StareSpec, spec: &DataSpec, root: &Path) -> Result<Dataset> {
    if !root.is_dir() {
        return Err(DataError::Missing { what: "STARE folder".into(), path: root.into(), hint: HINT.into() });
    }
    let tag = match s.annotator {
        Annotator::Ah => ".ah.",
        Annotator::Vk => ".vk.",
    };
    let pairs = image_label_pairs(root, tag)?;
    let n_train = s.train_images;
    if n_train == 0 || n_train >= pairs.len() {
        return Err(DataError::Invalid(format!(
            "`stare.train_images` must be between 1 and {} ({} labelled images found)",
            pairs.len() - 1,
            pairs.len()
        )));
    }
    let counts = train_counts(&pairs[..n_train], s.fov)?;
    let split = |ps: &[(PathBuf, PathBuf)]| {
        let mut sp = Split::new(
            Pixels::Files { paths: Arc::new(ps.iter().map(|p| p.0.clone()).collect()), channels: 3 },
            vec![0; ps.len()],
            Some(Masks::Files(Arc::new(ps.iter().map(|p| p.1.clone()).collect()))),
        );
        sp.mask_map = MaskMap::Binary;
        sp.fov = s.fov.map_or(Fov::Whole, Fov::Derived);
        sp
    };
    let fov_name = s.fov.map_or("no FOV".to_string(), |r| r.describe());
    Ok(Dataset {
        name: format!("STARE ({} labels, {fov_name})", &tag[1..3]),
        origin: root.display().to_string(),
        provenance: Provenance::Real,
        classes: vec!["background".into(), "vessel".into()],
        train: split(&pairs[..n_train]),
        test: split(&pairs[n_train..]),
        channels: 3,
        train_counts: counts,
        ignore_index: spec.ignore_index,
        skipped_files: vec![],
    })
}

/// Every image `im000N.ppm[.gz]` under `root` with its label map `im000N<tag>ppm[.gz]`, in file order.
fn image_label_pairs(root: &Path, tag: &str) -> Result<Vec<(PathBuf, PathBuf)>> {
    let is_image = |n: &str| {
        n.starts_with("im")
            && (n.ends_with(".ppm") || n.ends_with(".ppm.gz"))
            && n.matches('.').count() == if n.ends_with(".gz") { 2 } else { 1 }
    };
    let images = find_files(root, &is_image);
    let labels = find_files(root, &|n: &str| {
        n.starts_with("im") && n.contains(tag) && (n.ends_with(".ppm") || n.ends_with(".ppm.gz"))
    });
    if images.is_empty() {
        let drive = root.join("training/images").is_dir() || root.join("DRIVE/training/images").is_dir();
        return Err(DataError::Missing {
            what: "STARE images (im0001.ppm[.gz] ...)".into(),
            path: root.into(),
            hint: if drive {
                "this looks like a DRIVE folder (training/images/...): use `data.source: drive`".into()
            } else {
                HINT.into()
            },
        });
    }
    let mut pairs = vec![];
    for img in &images {
        let stem = stem_of(img);
        let label = labels.iter().find(|l| stem_of(l).trim_end_matches(&tag[..3]) == stem).cloned();
        let Some(label) = label else {
            return Err(DataError::Missing {
                what: format!("label map `{stem}{tag}ppm[.gz]` for {}", img.display()),
                path: root.into(),
                hint: format!("every image needs its `{}` label map; {HINT}", &tag[1..3]),
            });
        };
        pairs.push((img.clone(), label));
    }
    Ok(pairs)
}

/// Background/vessel pixel counts of the training label maps, inside the field of view when one
/// is derived. Each map is read once; its size must match its image's.
fn train_counts(pairs: &[(PathBuf, PathBuf)], fov: Option<RedThreshold>) -> Result<Vec<u64>> {
    let mut counts = vec![0u64; 2];
    for (img, lab) in pairs {
        let (mh, mw, m) = decode_mask(lab)?;
        let (ih, iw, px) = decode_rgb(img)?;
        if (mh, mw) != (ih, iw) {
            return Err(DataError::Invalid(format!(
                "{}: label map is {mh}×{mw} but its image is {ih}×{iw}",
                lab.display()
            )));
        }
        let inside = fov.map(|rule| fov::derive(&px, ih, iw, 3, rule));
        for (i, v) in m.into_iter().enumerate() {
            if inside.as_ref().is_none_or(|f| f[i]) {
                counts[MaskMap::Binary.apply(v) as usize] += 1;
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::seg::testing::{first_batch, gz, load_at, ppm, spec};

    /// STARE layout: `stare-images/im000N.ppm.gz` + `labels-ah/im000N.ah.ppm` (0/255 vessels).
    fn write_stare(dir: &Path, n: usize, (h, w): (u32, u32)) {
        std::fs::create_dir_all(dir.join("stare-images")).unwrap();
        std::fs::create_dir_all(dir.join("labels-ah")).unwrap();
        for i in 1..=n {
            let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([x as u8, y as u8, i as u8])
            }));
            std::fs::write(dir.join(format!("stare-images/im{i:04}.ppm.gz")), gz(&ppm(&img))).unwrap();
            // Vessel on the diagonal band |x - y| < 2.
            let lab = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
                image::Luma([if (x as i32 - y as i32).abs() < 2 { 255 } else { 0 }])
            }));
            std::fs::write(dir.join(format!("labels-ah/im{i:04}.ah.ppm")), ppm(&lab)).unwrap();
        }
    }

    #[test]
    fn stare_round_trip_with_gzipped_images() {
        let d = tempfile::tempdir().unwrap();
        write_stare(d.path(), 4, (10, 12));
        let s = spec("{source: stare, stare: {train_images: 3}}");
        let ds = load_at(&s, d.path(), 0).unwrap();
        assert_eq!((ds.train.len(), ds.test.len(), ds.classes.len()), (3, 1, 2));
        // Vessel pixels per image: the band |x - y| < 2 inside 10×12.
        let band =
            (0..10i32).flat_map(|y| (0..12i32).map(move |x| (x, y))).filter(|(x, y)| (x - y).abs() < 2).count() as u64;
        assert_eq!(ds.train_counts, vec![3 * (120 - band), 3 * band]);
        let b = first_batch(&ds, &ds.test, [10, 12]);
        assert!(b.dense && b.labels.len() == 120);
        assert_eq!(b.labels[0], 1); // (0, 0) is on the diagonal
        assert_eq!(b.labels[5], 0);
        assert!((b.images[12 + 3] - 3.0 / 255.0).abs() < 1e-6); // R = x at (row 1, col 3)
    }

    #[test]
    fn stare_errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        write_stare(d.path(), 3, (8, 8));
        std::fs::remove_file(d.path().join("labels-ah/im0002.ah.ppm")).unwrap();
        let s = spec("{source: stare, stare: {train_images: 2}}");
        let e = load_at(&s, d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("im0002.ah.ppm") && e.contains("stare-images/im0002.ppm.gz"), "{e}");
        // A label map of another size.
        write_stare(d.path(), 3, (8, 8));
        let small = image::DynamicImage::ImageLuma8(image::GrayImage::new(4, 4));
        std::fs::write(d.path().join("labels-ah/im0001.ah.ppm"), ppm(&small)).unwrap();
        let e = load_at(&s, d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("im0001.ah.ppm: label map is 4×4 but its image is 8×8"), "{e}");
        // A truncated image.
        write_stare(d.path(), 3, (8, 8));
        std::fs::write(d.path().join("stare-images/im0001.ppm.gz"), b"\x1f\x8b\x08\x00").unwrap();
        let e = load_at(&s, d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("im0001.ppm.gz"), "{e}");
        let e = load_at(&s, &d.path().join("none"), 0).unwrap_err().to_string();
        assert!(e.contains("clemson.edu"), "{e}");
    }

    /// A fundus-like image: a bright red disc of radius `r` on a dark surround, a vessel on
    /// the middle row that runs across the whole image (inside and outside the disc).
    fn write_fundus(dir: &Path, n: usize, side: u32, r: f64) {
        std::fs::create_dir_all(dir.join("stare-images")).unwrap();
        std::fs::create_dir_all(dir.join("labels-ah")).unwrap();
        let c = side as f64 / 2.0 - 0.5;
        for i in 1..=n {
            let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(side, side, |x, y| {
                let d = ((x as f64 - c).powi(2) + (y as f64 - c).powi(2)).sqrt();
                if d <= r { image::Rgb([180, 90, 40]) } else { image::Rgb([8, 4, 2]) }
            }));
            std::fs::write(dir.join(format!("stare-images/im{i:04}.ppm")), ppm(&img)).unwrap();
            let lab = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(side, side, |_, y| {
                image::Luma([if y == side / 2 { 255 } else { 0 }])
            }));
            std::fs::write(dir.join(format!("labels-ah/im{i:04}.ah.ppm")), ppm(&lab)).unwrap();
        }
    }

    #[test]
    fn stare_fov_ignores_labels_outside_and_counts_the_prior_inside() {
        let d = tempfile::tempdir().unwrap();
        let (side, r) = (21u32, 8.0);
        write_fundus(d.path(), 3, side, r);
        let whole = load_at(&spec("{source: stare, stare: {train_images: 2}}"), d.path(), 0).unwrap();
        assert_eq!(whole.train_counts, vec![2 * (21 * 21 - 21), 2 * 21]);
        assert!(whole.name.contains("no FOV"), "{}", whole.name);
        let s = spec("{source: stare, stare: {train_images: 2, fov: {red_above: 45, erode: 1}}}");
        let ds = load_at(&s, d.path(), 0).unwrap();
        assert!(ds.name.contains("FOV red > 45, eroded 1 px"), "the summary says which: {}", ds.name);
        // Inside: the disc of radius 8 eroded by a 3×3 square; the vessel row keeps the disc's
        // width less one pixel at each end.
        let disc = derive_count(side, r, 1);
        assert_eq!(ds.train_counts.iter().sum::<u64>(), 2 * disc.0 as u64);
        assert_eq!(ds.train_counts[1], 2 * disc.1 as u64, "vessel pixels inside: {:?}", ds.train_counts);
        let b = first_batch(&ds, &ds.test, [21, 21]);
        let mid = (side / 2) as usize * 21;
        assert_eq!(b.labels[mid], 255, "the vessel outside the disc is unlabelled");
        assert_eq!(b.labels[mid + 10], 1, "and labelled inside");
        assert_eq!(b.labels[0], 255);
        assert_eq!(b.labels[10 * 21 + 5 + 21 * 1], 0, "background inside stays background");
    }

    /// `(pixels inside, vessel-row pixels inside)` of the eroded disc, computed directly.
    fn derive_count(side: u32, r: f64, erode: i64) -> (usize, usize) {
        let c = side as f64 / 2.0 - 0.5;
        let n = side as i64;
        let disc = |x: i64, y: i64| {
            (0..n).contains(&x) && (0..n).contains(&y) && ((x as f64 - c).powi(2) + (y as f64 - c).powi(2)).sqrt() <= r
        };
        let inside = |x: i64, y: i64| {
            (-erode..=erode).all(|dy| (-erode..=erode).all(|dx| disc(x + dx, y + dy)))
        };
        let all = (0..n).flat_map(|y| (0..n).map(move |x| (x, y))).filter(|&(x, y)| inside(x, y)).count();
        let row = (0..n).filter(|&x| inside(x, n / 2)).count();
        (all, row)
    }

    #[test]
    fn a_drive_folder_given_as_stare_says_so() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("training/images")).unwrap();
        let e = load_at(&spec("{source: stare}"), d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("looks like a DRIVE folder") && e.contains("source: drive"), "{e}");
    }
}
