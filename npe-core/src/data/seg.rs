//! Segmentation label maps, and what the segmentation sources share: pixel counts, finding
//! files in a layout, decoding (optionally gzipped) images.

use super::error::{DataError, Result};
use std::path::{Path, PathBuf};

/// Decode a label map (PNG/PPM/PGM/GIF, optionally `.gz`) to one byte per pixel: the grey
/// value, or the first channel of a colour image.
pub fn decode_mask(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    decode_mask_bytes(super::idx::read_maybe_gz(path)?, path)
}

/// [`decode_mask`] of a file's bytes (`path` names it in errors; gzip is undone here too).
pub fn decode_mask_bytes(bytes: Vec<u8>, path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let bytes = super::idx::gunzip_if_gz(bytes, path)?;
    let img =
        image::load_from_memory(&bytes).map_err(|e| DataError::Decode { file: path.into(), message: e.to_string() })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data = match img {
        image::DynamicImage::ImageLuma8(g) => g.into_raw(),
        other => other.into_rgb8().pixels().map(|p| p.0[0]).collect(),
    };
    Ok((h, w, data))
}

/// Decode an RGB image that may be gzipped (STARE ships `.ppm.gz`): `(h, w, pixels)`.
pub fn decode_rgb(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let bytes = super::idx::read_maybe_gz(path)?;
    let img =
        image::load_from_memory(&bytes).map_err(|e| DataError::Decode { file: path.into(), message: e.to_string() })?;
    Ok((img.height() as usize, img.width() as usize, img.into_rgb8().into_raw()))
}

/// Per-class pixel counts (values ≥ `classes`, such as the ignore index, skipped).
pub fn pixel_counts(masks: impl Iterator<Item = Vec<u8>>, classes: usize) -> Vec<u64> {
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

/// All files under `root` (recursively, depth ≤ 3) whose names satisfy `keep`, sorted.
pub fn find_files(root: &Path, keep: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    find_files_to_depth(root, 3, keep)
}

/// [`find_files`] down to `max_depth` folders below `root`.
pub fn find_files_to_depth(root: &Path, max_depth: usize, keep: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, max: usize, keep: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() && depth < max {
                walk(&p, depth + 1, max, keep, out);
            } else if p.file_name().and_then(|n| n.to_str()).is_some_and(keep) {
                out.push(p);
            }
        }
    }
    let mut out = vec![];
    walk(root, 0, max_depth, keep, &mut out);
    out.sort();
    out
}

/// Helpers of the segmentation sources' tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::data::augment::Transform;
    use crate::data::dataset::{Dataset, Split};
    use crate::data::loader::{Loader, LoaderOptions};
    use crate::data::source::{Loaded, of_data};
    use crate::spec::{AugmentSpec, DataSpec};
    use std::io::Write;
    use std::path::Path;

    pub fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    pub fn ppm(img: &image::DynamicImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Pnm).unwrap();
        out.into_inner()
    }

    pub fn spec(yaml: &str) -> DataSpec {
        DataSpec::from_yaml(yaml).unwrap()
    }

    /// The source of `spec` loaded from `root`.
    pub fn load_at(spec: &DataSpec, root: &Path, seed: u64) -> crate::data::Result<Dataset> {
        match of_data(spec)?.load(spec, root, seed)? {
            Loaded::Pixels(d) => Ok(d),
            Loaded::Classes(_) => panic!("not a segmentation source"),
        }
    }

    /// The first batch (of 2) of `split`, unaugmented and unnormalised.
    pub fn first_batch(ds: &Dataset, split: &Split, size: [usize; 2]) -> crate::batch::HostBatch {
        let t = Transform::new(
            &AugmentSpec::default(),
            false,
            &vec![0.0; ds.channels],
            &vec![1.0; ds.channels],
            size,
            ds.ignore_index,
        );
        let opts = LoaderOptions {
            batch_size: 2,
            shuffle: false,
            drop_last: false,
            seed: 0,
            workers: 0,
            prefetch: 0,
            stream: 0,
        };
        Loader::new(split.clone(), t, ds.channels, opts).batch(0, 0).unwrap()
    }
}
