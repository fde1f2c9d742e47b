//! Segmentation sources: `seg_digits` (semi-synthetic, built from real MNIST / Fashion-MNIST
//! images), STARE and ADE20K (read from their on-disk layouts).

use super::dataset::{Dataset, DenseImages, MaskMap, Masks, Pixels, Provenance, Split};
use super::error::{DataError, Result};
use super::idx::{IdxSplit, read_idx_split};
use super::longtail::profile_counts;
use super::seg::decode_mask;
use crate::rng::Rng;
use crate::spec::{Annotator, DataSource, DataSpec, ItemSource, Profile};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Load a segmentation source.
pub fn load(spec: &DataSpec, root: &Path, seed: u64) -> Result<Dataset> {
    match spec.source {
        DataSource::SegDigits => seg_digits(spec, root, seed),
        DataSource::Stare => stare(spec, root),
        DataSource::Ade20k => ade20k(spec, root),
        other => {
            Err(DataError::Invalid(format!("`{}` is not a segmentation source", super::describe::source_name(other))))
        }
    }
}

/// Per-class pixel counts (ignored values skipped) of label maps.
fn pixel_counts(masks: impl Iterator<Item = Vec<u8>>, classes: usize) -> Vec<u64> {
    let mut c = vec![0u64; classes];
    for m in masks {
        for v in m {
            if (v as usize) < classes {
                c[v as usize] += 1;
            }
        }
    }
    c
}

// ---------------------------------------------------------------- seg_digits

/// Item class probabilities of training canvases, from the long-tail profile.
fn item_probabilities(spec: &DataSpec) -> Vec<f64> {
    let lt = &spec.long_tail;
    let w: Vec<f64> = match lt.profile {
        Profile::None => vec![1.0; 10],
        p => {
            profile_counts(p, 1_000_000, 10, lt.imbalance_factor, lt.step_fraction).iter().map(|&n| n as f64).collect()
        }
    };
    let total: f64 = w.iter().sum();
    w.iter().map(|x| x / total).collect()
}

fn sample(p: &[f64], r: &mut Rng) -> usize {
    let u = r.next_f64();
    let mut acc = 0.0;
    for (k, &pk) in p.iter().enumerate() {
        acc += pk;
        if u < acc {
            return k;
        }
    }
    p.len() - 1
}

/// Build `n` canvases from `items`, item classes drawn from `p`.
fn canvases(
    items: &IdxSplit,
    n: usize,
    p: &[f64],
    canvas: usize,
    count: [usize; 2],
    threshold: u8,
    seed: u64,
    tag: u64,
) -> (Vec<u8>, Vec<u8>) {
    let (ih, iw) = (items.images.dims[1], items.images.dims[2]);
    let mut by_class: Vec<Vec<usize>> = vec![vec![]; 10];
    for (i, &l) in items.labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut pixels = vec![0u8; n * canvas * canvas];
    let mut masks = vec![0u8; n * canvas * canvas];
    for c in 0..n {
        let mut r = Rng::stream(seed, &[0x5e9, tag, c as u64]);
        let k_items = count[0] + r.below((count[1] - count[0] + 1) as u64) as usize;
        let px = &mut pixels[c * canvas * canvas..(c + 1) * canvas * canvas];
        let mk = &mut masks[c * canvas * canvas..(c + 1) * canvas * canvas];
        for _ in 0..k_items {
            let class = sample(p, &mut r);
            let pool = &by_class[class];
            let item = pool[r.below(pool.len() as u64) as usize];
            let img = &items.images.data[item * ih * iw..(item + 1) * ih * iw];
            let (y0, x0) = (r.below((canvas - ih + 1) as u64) as usize, r.below((canvas - iw + 1) as u64) as usize);
            for y in 0..ih {
                for x in 0..iw {
                    let v = img[y * iw + x];
                    let o = (y0 + y) * canvas + x0 + x;
                    if v > 0 {
                        px[o] = px[o].max(v);
                    }
                    if v > threshold {
                        mk[o] = class as u8 + 1;
                    }
                }
            }
        }
    }
    (pixels, masks)
}

fn seg_digits(spec: &DataSpec, root: &Path, seed: u64) -> Result<Dataset> {
    let s = &spec.seg_digits;
    if s.canvas < 28 {
        return Err(DataError::Invalid(format!(
            "`seg_digits.canvas` must be at least 28 (the item size), got {}",
            s.canvas
        )));
    }
    if s.items[0] == 0 || s.items[0] > s.items[1] {
        return Err(DataError::Invalid(format!(
            "`seg_digits.items` must be [min, max] with 1 ≤ min ≤ max, got {:?}",
            s.items
        )));
    }
    let (hint, names): (&str, [&str; 10]) = match s.items_from {
        ItemSource::FashionMnist => (
            "sudo apt-get install dataset-fashion-mnist",
            ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        ),
        ItemSource::Mnist => ("scripts/get-data.sh mnist", ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]),
    };
    let train_items = read_idx_split(root, "train", 10, hint)?;
    let test_items = read_idx_split(root, "t10k", 10, hint)?;
    let p_train = item_probabilities(spec);
    let p_test = vec![0.1; 10];
    let c = s.canvas;
    let (tp, tm) = canvases(&train_items, s.train_images, &p_train, c, s.items, s.threshold, seed, 1);
    let (vp, vm) = canvases(&test_items, s.test_images, &p_test, c, s.items, s.threshold, seed, 2);
    let counts = pixel_counts(tm.chunks(c * c).map(<[u8]>::to_vec), 11);
    let dense = |d: Vec<u8>| DenseImages { h: c, w: c, c: 1, data: Arc::new(d) };
    let n_train = s.train_images;
    let n_test = s.test_images;
    let train = Split::new(Pixels::Dense(dense(tp)), vec![0; n_train], Some(Masks::Dense(dense(tm))));
    let test = Split::new(Pixels::Dense(dense(vp)), vec![0; n_test], Some(Masks::Dense(dense(vm))));
    let from = if s.items_from == ItemSource::Mnist { "MNIST" } else { "Fashion-MNIST" };
    let mut classes = vec!["background".to_string()];
    classes.extend(names.iter().map(|n| n.to_string()));
    Ok(Dataset {
        name: format!("seg-digits-LT (semi-synthetic, {from} items, IF {})", spec.long_tail.imbalance_factor),
        origin: format!("canvases generated from real {from} images in {}", root.display()),
        provenance: Provenance::SemiSynthetic,
        classes,
        train,
        test,
        channels: 1,
        train_counts: counts,
        ignore_index: spec.ignore_index,
        skipped_files: vec![],
    })
}

// ---------------------------------------------------------------- STARE

fn stem_of(p: &Path) -> String {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.trim_end_matches(".gz").trim_end_matches(".ppm").to_string()
}

/// All files under `root` (recursively, depth ≤ 3) whose names satisfy `keep`.
fn find_files(root: &Path, keep: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, keep: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() && depth < 3 {
                walk(&p, depth + 1, keep, out);
            } else if p.file_name().and_then(|n| n.to_str()).is_some_and(keep) {
                out.push(p);
            }
        }
    }
    let mut out = vec![];
    walk(root, 0, keep, &mut out);
    out.sort();
    out
}

fn stare(spec: &DataSpec, root: &Path) -> Result<Dataset> {
    let hint = "STARE is at https://cecas.clemson.edu/~ahoover/stare/ (stare-images.tar, labels-ah.tar): unpack both under one folder and pass `--set data.root=PATH`";
    if !root.is_dir() {
        return Err(DataError::Missing { what: "STARE folder".into(), path: root.into(), hint: hint.into() });
    }
    let tag = match spec.stare.annotator {
        Annotator::Ah => ".ah.",
        Annotator::Vk => ".vk.",
    };
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
        return Err(DataError::Missing {
            what: "STARE images (im0001.ppm[.gz] ...)".into(),
            path: root.into(),
            hint: hint.into(),
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
                hint: format!("every image needs its `{}` label map; {hint}", &tag[1..3]),
            });
        };
        pairs.push((img.clone(), label));
    }
    let n_train = spec.stare.train_images;
    if n_train == 0 || n_train >= pairs.len() {
        return Err(DataError::Invalid(format!(
            "`stare.train_images` must be between 1 and {} ({} labelled images found)",
            pairs.len() - 1,
            pairs.len()
        )));
    }
    // Read every label map once: sizes must match their images, values become 0/1.
    let mut counts = vec![0u64; 2];
    for (img, lab) in &pairs[..n_train] {
        let (mh, mw, m) = decode_mask(lab)?;
        let (ih, iw, _) = decode_gz_image(img)?;
        if (mh, mw) != (ih, iw) {
            return Err(DataError::Invalid(format!(
                "{}: label map is {mh}×{mw} but its image is {ih}×{iw}",
                lab.display()
            )));
        }
        for v in m {
            counts[MaskMap::Binary.apply(v) as usize] += 1;
        }
    }
    let split = |ps: &[(PathBuf, PathBuf)]| {
        let mut s = Split::new(
            Pixels::Files { paths: Arc::new(ps.iter().map(|p| p.0.clone()).collect()), channels: 3 },
            vec![0; ps.len()],
            Some(Masks::Files(Arc::new(ps.iter().map(|p| p.1.clone()).collect()))),
        );
        s.mask_map = MaskMap::Binary;
        s
    };
    Ok(Dataset {
        name: format!("STARE ({} labels)", &tag[1..3]),
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

/// Decode an image that may be gzipped (STARE ships `.ppm.gz`).
fn decode_gz_image(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let bytes = super::idx::read_maybe_gz(path)?;
    let img =
        image::load_from_memory(&bytes).map_err(|e| DataError::Decode { file: path.into(), message: e.to_string() })?;
    Ok((img.height() as usize, img.width() as usize, img.into_rgb8().into_raw()))
}

// ---------------------------------------------------------------- ADE20K

const ADE_CLASSES: usize = 150;

fn ade20k(spec: &DataSpec, root: &Path) -> Result<Dataset> {
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
    use crate::data::augment::Transform;
    use crate::data::loader::{Loader, LoaderOptions};
    use crate::spec::AugmentSpec;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn ppm(img: &image::DynamicImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Pnm).unwrap();
        out.into_inner()
    }

    fn spec(yaml: &str) -> DataSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

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

    fn first_batch(ds: &Dataset, split: &Split, size: [usize; 2]) -> crate::batch::HostBatch {
        let t = Transform::new(
            &AugmentSpec::default(),
            false,
            &vec![0.0; ds.channels],
            &vec![1.0; ds.channels],
            size,
            ds.ignore_index,
        );
        let l = Loader::new(
            split.clone(),
            t,
            ds.channels,
            LoaderOptions {
                batch_size: 2,
                shuffle: false,
                drop_last: false,
                seed: 0,
                workers: 0,
                prefetch: 0,
                stream: 0,
            },
        );
        l.batch(0, 0).unwrap()
    }

    #[test]
    fn stare_round_trip_with_gzipped_images() {
        let d = tempfile::tempdir().unwrap();
        write_stare(d.path(), 4, (10, 12));
        let s = spec("{source: stare, stare: {train_images: 3}}");
        let ds = load(&s, d.path(), 0).unwrap();
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
        let e = load(&s, d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("im0002.ah.ppm") && e.contains("stare-images/im0002.ppm.gz"), "{e}");
        // A label map of another size.
        write_stare(d.path(), 3, (8, 8));
        let small = image::DynamicImage::ImageLuma8(image::GrayImage::new(4, 4));
        std::fs::write(d.path().join("labels-ah/im0001.ah.ppm"), ppm(&small)).unwrap();
        let e = load(&s, d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("im0001.ah.ppm: label map is 4×4 but its image is 8×8"), "{e}");
        // A truncated image.
        write_stare(d.path(), 3, (8, 8));
        std::fs::write(d.path().join("stare-images/im0001.ppm.gz"), b"\x1f\x8b\x08\x00").unwrap();
        let e = load(&s, d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("im0001.ppm.gz"), "{e}");
        let e = load(&s, &d.path().join("none"), 0).unwrap_err().to_string();
        assert!(e.contains("clemson.edu"), "{e}");
    }

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
        let ds = load(&spec("{source: ade20k}"), d.path(), 0).unwrap();
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
        let e = load(&spec("{source: ade20k}"), d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("annotation for") && e.contains("ADE_training_00000000.jpg"), "{e}");
        write_ade(d.path(), 1, 3);
        image::GrayImage::from_pixel(16, 8, image::Luma([200]))
            .save(base.join("annotations/training/ADE_training_00000000.png"))
            .unwrap();
        let e = load(&spec("{source: ade20k}"), d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("label 200") && e.contains("ADE_training_00000000.png"), "{e}");
        let e = load(&spec("{source: ade20k}"), &d.path().join("missing"), 0).unwrap_err().to_string();
        assert!(e.contains("ADEChallengeData2016.zip"), "{e}");
    }

    #[test]
    fn seg_digits_is_long_tailed_deterministic_and_balanced_at_test() {
        let d = tempfile::tempdir().unwrap();
        // Items: 10 classes × 3 images of 28×28 with a 10×10 bright square.
        let mut imgs = vec![0u8; 30 * 28 * 28];
        for i in 0..30 {
            for y in 9..19 {
                for x in 9..19 {
                    imgs[i * 784 + y * 28 + x] = 200;
                }
            }
        }
        let labels: Vec<u8> = (0..30).map(|i| (i % 10) as u8).collect();
        for p in ["train", "t10k"] {
            std::fs::write(
                d.path().join(format!("{p}-images-idx3-ubyte")),
                crate::data::idx::encode_idx(&[30, 28, 28], &imgs),
            )
            .unwrap();
            std::fs::write(
                d.path().join(format!("{p}-labels-idx1-ubyte")),
                crate::data::idx::encode_idx(&[30], &labels),
            )
            .unwrap();
        }
        let s = spec(
            "{source: seg_digits, seg_digits: {canvas: 40, items: [1, 1], train_images: 400, test_images: 400}, long_tail: {profile: exponential, imbalance_factor: 20}}",
        );
        let a = load(&s, d.path(), 3).unwrap();
        let b = load(&s, d.path(), 3).unwrap();
        assert_eq!(a.train_counts, b.train_counts);
        // One 100-pixel item per canvas: foreground pixels = 100 per image.
        assert_eq!(a.train_counts[1..].iter().sum::<u64>(), 400 * 100);
        assert!(a.train_counts[1] > 8 * a.train_counts[10], "{:?}", a.train_counts);
        assert_eq!(a.provenance, Provenance::SemiSynthetic);
        let Some(Masks::Dense(m)) = &a.test.masks else { panic!() };
        let test_counts = pixel_counts(m.data.chunks(1600).map(<[u8]>::to_vec), 11);
        assert!(test_counts[10] * 3 > test_counts[1], "test classes are uniform: {test_counts:?}");
    }
}
