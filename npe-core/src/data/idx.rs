//! IDX files (MNIST, Fashion-MNIST), raw or gzipped: `00 00 08 NDIM`, big-endian u32 dims, bytes.

use super::error::{DataError, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// An IDX array of unsigned bytes.
#[derive(Debug)]
pub struct IdxArray {
    /// Dimensions (N, then per-sample dims).
    pub dims: Vec<usize>,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Read a whole file, transparently gunzipping if it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    gunzip_if_gz(raw, path)
}

/// `raw` gunzipped if it starts with the gzip magic (`path` names it in errors).
pub fn gunzip_if_gz(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        let mut dec = flate2::read::MultiGzDecoder::new(&raw[..]);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // The offset is into the decompressed data: where the stream stopped making sense.
                Err(e) => {
                    return Err(DataError::corrupt(
                        path,
                        out.len() as u64,
                        format!("gzip stream is damaged or truncated after {} decompressed bytes: {e}", out.len()),
                    ));
                }
            }
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse IDX bytes; `file` is used in errors.
pub fn parse_idx(bytes: &[u8], file: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(DataError::corrupt(file, bytes.len() as u64, "file too short for an IDX header"));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::corrupt(
            file,
            0,
            format!(
                "wrong magic number {:02x}{:02x}{:02x}{:02x}: not an IDX file",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(DataError::corrupt(
            file,
            2,
            format!("IDX element type 0x{:02x} is not unsigned bytes (0x08)", bytes[2]),
        ));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(DataError::corrupt(file, 3, format!("IDX with {ndim} dimensions")));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(DataError::corrupt(file, bytes.len() as u64, "truncated IDX header"));
    }
    let dims: Vec<usize> =
        (0..ndim).map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize).collect();
    let want = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let Some(want) = want else {
        return Err(DataError::corrupt(file, 4, format!("impossible IDX dimensions {dims:?}")));
    };
    let have = bytes.len() - header;
    if have < want {
        return Err(DataError::corrupt(
            file,
            bytes.len() as u64,
            format!("truncated: dimensions {dims:?} need {want} data bytes, the file has {have}"),
        ));
    }
    if have > want {
        return Err(DataError::corrupt(
            file,
            (header + want) as u64,
            format!("{} unexpected bytes after the data", have - want),
        ));
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// Read an IDX file (raw or gzipped).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    parse_idx(&read_maybe_gz(path)?, path)
}

/// The first of `name.gz` / `name` that exists in `dir`.
pub fn find_idx(dir: &Path, name: &str) -> Option<PathBuf> {
    [format!("{name}.gz"), name.to_string()].into_iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Images and labels of one split of an MNIST-style set.
pub struct IdxSplit {
    /// `[N, 28, 28]` pixels.
    pub images: IdxArray,
    /// Labels, each < `classes`.
    pub labels: Vec<u32>,
}

/// Read `{prefix}-images-idx3-ubyte` and `{prefix}-labels-idx1-ubyte` from `dir`.
pub fn read_idx_split(dir: &Path, prefix: &str, classes: usize, hint: &str) -> Result<IdxSplit> {
    let find = |kind: &str, n: usize| {
        let name = format!("{prefix}-{kind}-idx{n}-ubyte");
        find_idx(dir, &name).ok_or_else(|| DataError::Missing {
            what: format!("{name}[.gz]"),
            path: dir.to_path_buf(),
            hint: hint.to_string(),
        })
    };
    let img_path = find("images", 3)?;
    let lab_path = find("labels", 1)?;
    let images = read_idx(&img_path)?;
    let labels = read_idx(&lab_path)?;
    if images.dims.len() != 3 {
        return Err(DataError::corrupt(
            &img_path,
            3,
            format!("image file has {} dimensions, expected 3", images.dims.len()),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(DataError::corrupt(
            &lab_path,
            3,
            format!("label file has {} dimensions, expected 1", labels.dims.len()),
        ));
    }
    if labels.dims[0] != images.dims[0] {
        return Err(DataError::corrupt(
            &lab_path,
            4,
            format!("{} labels for {} images in {}", labels.dims[0], images.dims[0], img_path.display()),
        ));
    }
    let mut out = Vec::with_capacity(labels.data.len());
    for (i, &l) in labels.data.iter().enumerate() {
        if l as usize >= classes {
            return Err(DataError::LabelRange { file: lab_path.clone(), index: i, label: l as i64, classes });
        }
        out.push(l as u32);
    }
    Ok(IdxSplit { images, labels: out })
}

/// Encode an IDX array (tests, tools).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for &d in dims {
        v.extend_from_slice(&(d as u32).to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn raw_and_gz_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        std::fs::write(dir.path().join("a-images-idx3-ubyte"), encode_idx(&[2, 3, 4], &pixels)).unwrap();
        std::fs::write(dir.path().join("a-labels-idx1-ubyte.gz"), gz(&encode_idx(&[2], &[1, 0]))).unwrap();
        let s = read_idx_split(dir.path(), "a", 2, "").unwrap();
        assert_eq!(s.images.dims, vec![2, 3, 4]);
        assert_eq!(s.images.data, pixels);
        assert_eq!(s.labels, vec![1, 0]);
    }

    #[test]
    fn corrupt_variants_are_named() {
        let p = Path::new("x-ubyte");
        let good = encode_idx(&[2, 2], &[1, 2, 3, 4]);
        let e = parse_idx(&good[..good.len() - 1], p).unwrap_err().to_string();
        assert!(
            e.contains("x-ubyte") && e.contains("truncated") && e.contains("need 4 data bytes, the file has 3"),
            "{e}"
        );
        let mut bad = good.clone();
        bad[0] = 0x50;
        assert!(parse_idx(&bad, p).unwrap_err().to_string().contains("wrong magic number"));
        let e = parse_idx(&[good.clone(), vec![9]].concat(), p).unwrap_err().to_string();
        assert!(e.contains("unexpected bytes"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.gz");
        let z = gz(&good);
        std::fs::write(&f, &z[..z.len() / 2]).unwrap();
        let e = read_idx(&f).unwrap_err().to_string();
        assert!(e.contains("gzip stream is damaged") && !e.contains("byte offset 0"), "{e}");
    }

    #[test]
    fn label_out_of_range_names_index() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a-images-idx3-ubyte"), encode_idx(&[2, 1, 1], &[0, 0])).unwrap();
        std::fs::write(dir.path().join("a-labels-idx1-ubyte"), encode_idx(&[2], &[3, 12])).unwrap();
        let e = read_idx_split(dir.path(), "a", 10, "").err().unwrap().to_string();
        assert!(e.contains("label 12 of sample 1 is out of range"), "{e}");
    }
}
