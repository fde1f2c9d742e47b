//! Segmentation label maps.

use super::error::{DataError, Result};
use std::path::Path;

/// Decode a label map (PNG/PPM/PGM, optionally `.gz`) to one byte per pixel: the grey value,
/// or the first channel of a colour image.
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
