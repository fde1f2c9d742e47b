//! CIFAR-10 and CIFAR-100, in both official releases:
//! - binary: `data_batch_{1..5}.bin`, `test_batch.bin` (CIFAR-10: label byte + 3072 pixel bytes);
//!   `train.bin`, `test.bin` (CIFAR-100: coarse byte, fine byte, 3072 pixel bytes);
//! - python: pickled dicts `data_batch_{1..5}`, `test_batch`, `batches.meta` (CIFAR-10);
//!   `train`, `test`, `meta` (CIFAR-100, fine labels used).
//! Pixels are stored planar (1024 R, 1024 G, 1024 B); we keep them interleaved HWC.

use super::dataset::DenseImages;
use super::error::{DataError, Result};
use super::pickle;
use crate::spec::DataFormat;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar {
    /// 10 classes.
    Ten,
    /// 100 fine classes.
    Hundred,
}

impl Cifar {
    /// Class count.
    pub fn classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::Hundred => 100,
        }
    }
    fn folders(self) -> (&'static str, &'static str) {
        match self {
            Cifar::Ten => ("cifar-10-batches-bin", "cifar-10-batches-py"),
            Cifar::Hundred => ("cifar-100-binary", "cifar-100-python"),
        }
    }
    fn train_files(self, fmt: DataFormat) -> Vec<&'static str> {
        match (self, fmt) {
            (Cifar::Ten, DataFormat::Binary) => {
                vec!["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"]
            }
            (Cifar::Ten, _) => vec!["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"],
            (Cifar::Hundred, DataFormat::Binary) => vec!["train.bin"],
            (Cifar::Hundred, _) => vec!["train"],
        }
    }
    fn test_file(self, fmt: DataFormat) -> &'static str {
        match (self, fmt) {
            (Cifar::Ten, DataFormat::Binary) => "test_batch.bin",
            (Cifar::Ten, _) => "test_batch",
            (Cifar::Hundred, DataFormat::Binary) => "test.bin",
            (Cifar::Hundred, _) => "test",
        }
    }
    /// Official class names (CIFAR-10; CIFAR-100 reads them from the release).
    pub fn ten_names() -> Vec<String> {
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
            .map(String::from)
            .to_vec()
    }
}

/// One split: interleaved images and labels.
pub struct CifarSplit {
    /// `[N, 32, 32, 3]`.
    pub images: DenseImages,
    /// Labels.
    pub labels: Vec<u32>,
}

/// A loaded release.
pub struct CifarData {
    /// Training split (50k).
    pub train: CifarSplit,
    /// Test split (10k).
    pub test: CifarSplit,
    /// Class names.
    pub names: Vec<String>,
    /// Folder read.
    pub dir: PathBuf,
    /// Format read.
    pub format: DataFormat,
}

fn how_to_get(which: Cifar) -> String {
    let (bin, py) = which.folders();
    format!(
        "download the CIFAR-{} binary ({bin}) or python ({py}) release from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it, and pass `--set data.root=PATH` (the folder itself or its parent)",
        which.classes()
    )
}

/// Find the release folder under `root` (the folder itself, or a known child) and its format.
pub fn locate(root: &Path, which: Cifar, fmt: DataFormat) -> Result<(PathBuf, DataFormat)> {
    if !root.exists() {
        return Err(DataError::Missing {
            what: format!("CIFAR-{} folder", which.classes()),
            path: root.into(),
            hint: how_to_get(which),
        });
    }
    let (bin, py) = which.folders();
    let candidates = [root.to_path_buf(), root.join(bin), root.join(py)];
    for fmt_try in [DataFormat::Binary, DataFormat::Python] {
        if fmt != DataFormat::Auto && fmt != fmt_try {
            continue;
        }
        for dir in &candidates {
            if dir.join(which.test_file(fmt_try)).is_file() {
                return Ok((dir.clone(), fmt_try));
            }
        }
    }
    let want = match fmt {
        DataFormat::Python => format!("`{}` (python release)", which.test_file(DataFormat::Python)),
        DataFormat::Binary => format!("`{}` (binary release)", which.test_file(DataFormat::Binary)),
        DataFormat::Auto => {
            format!("`{}` or `{}`", which.test_file(DataFormat::Binary), which.test_file(DataFormat::Python))
        }
    };
    Err(DataError::Missing {
        what: format!("CIFAR-{} files ({want})", which.classes()),
        path: root.into(),
        hint: how_to_get(which),
    })
}

/// Load train and test splits.
pub fn load(root: &Path, which: Cifar, fmt: DataFormat) -> Result<CifarData> {
    let (dir, fmt) = locate(root, which, fmt)?;
    let read_split = |files: &[&str]| -> Result<CifarSplit> {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for f in files {
            let path = dir.join(f);
            if !path.is_file() {
                return Err(DataError::Missing {
                    what: format!("`{f}`"),
                    path: dir.clone(),
                    hint: format!("the release in this folder is incomplete; {}", how_to_get(which)),
                });
            }
            match fmt {
                DataFormat::Binary => read_binary(&path, which, &mut pixels, &mut labels)?,
                _ => read_python(&path, which, &mut pixels, &mut labels)?,
            }
        }
        Ok(CifarSplit { images: DenseImages { h: 32, w: 32, c: 3, data: Arc::new(pixels) }, labels })
    };
    let train = read_split(&which.train_files(fmt))?;
    let test = read_split(&[which.test_file(fmt)])?;
    let names = match (which, fmt) {
        (Cifar::Ten, _) => Cifar::ten_names(),
        (Cifar::Hundred, DataFormat::Binary) => read_names_txt(&dir.join("fine_label_names.txt"), 100),
        (Cifar::Hundred, _) => read_names_meta(&dir.join("meta"), 100),
    };
    Ok(CifarData { train, test, names, dir, format: fmt })
}

/// Append planar CHW pixels as interleaved HWC.
fn push_hwc(planar: &[u8], out: &mut Vec<u8>) {
    let (r, rest) = planar.split_at(1024);
    let (g, b) = rest.split_at(1024);
    out.reserve(PIXELS);
    for i in 0..1024 {
        out.extend_from_slice(&[r[i], g[i], b[i]]);
    }
}

fn read_binary(path: &Path, which: Cifar, pixels: &mut Vec<u8>, labels: &mut Vec<u32>) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_binary(&bytes, path, which, pixels, labels)
}

/// Parse a binary-release batch (`path` names it in errors); appends HWC pixels and labels.
pub fn parse_binary(
    bytes: &[u8],
    path: &Path,
    which: Cifar,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    let head = if which == Cifar::Ten { 1 } else { 2 };
    let rec = head + PIXELS;
    if bytes.is_empty() || bytes.len() % rec != 0 {
        return Err(DataError::corrupt(
            path,
            (bytes.len() / rec * rec) as u64,
            format!(
                "{} bytes is not a whole number of {rec}-byte CIFAR-{} records (truncated or not a CIFAR file)",
                bytes.len(),
                which.classes()
            ),
        ));
    }
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let label = r[head - 1] as usize; // CIFAR-100: the fine label is the second byte
        if label >= which.classes() {
            return Err(DataError::LabelRange {
                file: path.into(),
                index: i,
                label: label as i64,
                classes: which.classes(),
            });
        }
        labels.push(label as u32);
        push_hwc(&r[head..], pixels);
    }
    Ok(())
}

fn read_python(path: &Path, which: Cifar, pixels: &mut Vec<u8>, labels: &mut Vec<u32>) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_python(&bytes, path, which, pixels, labels)
}

/// Parse a python-release batch (a pickled dict; `path` names it in errors).
pub fn parse_python(
    bytes: &[u8],
    path: &Path,
    which: Cifar,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    let v = pickle::load(bytes)
        .map_err(|e| DataError::corrupt(path, e.offset, format!("not a readable pickle: {}", e.message)))?;
    let key = if which == Cifar::Ten { "labels" } else { "fine_labels" };
    let data =
        v.get("data").ok_or_else(|| DataError::corrupt(path, 0, "pickle has no `data` entry (not a CIFAR batch)"))?;
    let (shape, data) = pickle::ndarray_u8(&data).map_err(|m| DataError::corrupt(path, 0, format!("`data`: {m}")))?;
    if shape.len() != 2 || shape[1] != PIXELS {
        return Err(DataError::corrupt(path, 0, format!("`data` has shape {shape:?}, expected [N, 3072]")));
    }
    let labs = v
        .get(key)
        .and_then(|l| l.items())
        .ok_or_else(|| DataError::corrupt(path, 0, format!("pickle has no `{key}` list")))?;
    if labs.len() != shape[0] {
        return Err(DataError::corrupt(path, 0, format!("{} labels for {} images", labs.len(), shape[0])));
    }
    for (i, l) in labs.iter().enumerate() {
        let l = l.as_int().ok_or_else(|| DataError::corrupt(path, 0, format!("label {i} is not an integer")))?;
        if !(0..which.classes() as i64).contains(&l) {
            return Err(DataError::LabelRange { file: path.into(), index: i, label: l, classes: which.classes() });
        }
        labels.push(l as u32);
    }
    for img in data.chunks_exact(PIXELS) {
        push_hwc(img, pixels);
    }
    Ok(())
}

fn fallback_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("class_{i}")).collect()
}

fn read_names_txt(path: &Path, n: usize) -> Vec<String> {
    let names: Vec<String> = std::fs::read_to_string(path)
        .map(|s| s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    if names.len() == n { names } else { fallback_names(n) }
}

fn read_names_meta(path: &Path, n: usize) -> Vec<String> {
    let names: Vec<String> = std::fs::read(path)
        .ok()
        .and_then(|b| pickle::load(&b).ok())
        .and_then(|v| v.get("fine_label_names"))
        .and_then(|l| l.items())
        .map(|items| items.iter().filter_map(pickle::Py::as_key).collect())
        .unwrap_or_default();
    if names.len() == n { names } else { fallback_names(n) }
}

/// Writers of the exact release formats, for tests and tools.
pub mod write {
    use super::PIXELS;

    /// A CIFAR-10 binary batch: records of `label, R[1024], G[1024], B[1024]`.
    pub fn binary10(labels: &[u8], planar: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, &l) in labels.iter().enumerate() {
            v.push(l);
            v.extend_from_slice(&planar[i * PIXELS..(i + 1) * PIXELS]);
        }
        v
    }

    /// A CIFAR-100 binary file: records of `coarse, fine, pixels`.
    pub fn binary100(coarse: &[u8], fine: &[u8], planar: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..fine.len() {
            v.extend_from_slice(&[coarse[i], fine[i]]);
            v.extend_from_slice(&planar[i * PIXELS..(i + 1) * PIXELS]);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planar(n: usize, seed: u8) -> Vec<u8> {
        (0..n * PIXELS).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    fn check_hwc(split: &CifarSplit, planar: &[u8], i: usize) {
        let img = split.images.image(i);
        let p = &planar[i * PIXELS..];
        // pixel (row 2, col 5): R, G, B planes at 2*32+5
        let k = 2 * 32 + 5;
        assert_eq!(&img[3 * k..3 * k + 3], &[p[k], p[1024 + k], p[2048 + k]]);
    }

    #[test]
    fn cifar10_binary_and_python_agree() {
        let dir = tempfile::tempdir().unwrap();
        let (bin, py) = (dir.path().join("cifar-10-batches-bin"), dir.path().join("cifar-10-batches-py"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&py).unwrap();
        let mut all = vec![];
        for b in 1..=5u8 {
            let px = planar(3, b);
            let labels = [b, (b + 3) % 10, 9];
            std::fs::write(bin.join(format!("data_batch_{b}.bin")), write::binary10(&labels, &px)).unwrap();
            std::fs::write(
                py.join(format!("data_batch_{b}")),
                pickle::write::cifar_batch_py2("labels", &labels, None, &px, 3),
            )
            .unwrap();
            all.push((labels, px));
        }
        let tp = planar(2, 77);
        std::fs::write(bin.join("test_batch.bin"), write::binary10(&[0, 1], &tp)).unwrap();
        std::fs::write(py.join("test_batch"), pickle::write::cifar_batch_py2("labels", &[0, 1], None, &tp, 2)).unwrap();
        let a = load(dir.path(), Cifar::Ten, DataFormat::Auto).unwrap();
        assert_eq!(a.format, DataFormat::Binary);
        let b = load(dir.path(), Cifar::Ten, DataFormat::Python).unwrap();
        assert_eq!(a.train.labels, b.train.labels);
        assert_eq!(a.train.images.data, b.train.images.data);
        assert_eq!(a.train.labels[..3], [1, 4, 9]);
        assert_eq!(a.test.images.len(), 2);
        check_hwc(&a.train, &all[0].1, 1);
        check_hwc(&b.test, &tp, 1);
    }

    #[test]
    fn cifar100_uses_fine_labels() {
        let dir = tempfile::tempdir().unwrap();
        let px = planar(2, 5);
        std::fs::write(dir.path().join("train.bin"), write::binary100(&[1, 2], &[42, 99], &px)).unwrap();
        std::fs::write(dir.path().join("test.bin"), write::binary100(&[0], &[7], &px[..PIXELS])).unwrap();
        let d = load(dir.path(), Cifar::Hundred, DataFormat::Auto).unwrap();
        assert_eq!(d.train.labels, vec![42, 99]);
        assert_eq!(d.test.labels, vec![7]);
        let py = tempfile::tempdir().unwrap();
        std::fs::write(
            py.path().join("train"),
            pickle::write::cifar_batch_py2("fine_labels", &[42, 99], Some(("coarse_labels", &[1, 2])), &px, 2),
        )
        .unwrap();
        std::fs::write(
            py.path().join("test"),
            pickle::write::cifar_batch_py2("fine_labels", &[7], Some(("coarse_labels", &[0])), &px[..PIXELS], 1),
        )
        .unwrap();
        std::fs::write(py.path().join("meta"), pickle::write::names_py2("fine_label_names", &["apple"; 100])).unwrap();
        let p = load(py.path(), Cifar::Hundred, DataFormat::Python).unwrap();
        assert_eq!(p.train.labels, vec![42, 99]);
        assert_eq!(p.names[0], "apple");
        assert_eq!(p.train.images.data, d.train.images.data);
    }

    #[test]
    fn corrupt_files_name_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let px = planar(2, 1);
        let good = write::binary10(&[1, 2], &px);
        for b in 1..=5 {
            std::fs::write(dir.path().join(format!("data_batch_{b}.bin")), &good).unwrap();
        }
        std::fs::write(dir.path().join("test_batch.bin"), &good[..good.len() - 10]).unwrap();
        let e = load(dir.path(), Cifar::Ten, DataFormat::Auto).err().unwrap().to_string();
        assert!(e.contains("test_batch.bin") && e.contains("not a whole number") && e.contains("offset 3073"), "{e}");
        let mut bad = good.clone();
        bad[3073] = 10; // second record's label
        std::fs::write(dir.path().join("test_batch.bin"), &bad).unwrap();
        let e = load(dir.path(), Cifar::Ten, DataFormat::Auto).err().unwrap().to_string();
        assert!(e.contains("label 10 of sample 1 is out of range"), "{e}");
        std::fs::remove_file(dir.path().join("data_batch_3.bin")).unwrap();
        std::fs::write(dir.path().join("test_batch.bin"), &good).unwrap();
        let e = load(dir.path(), Cifar::Ten, DataFormat::Auto).err().unwrap().to_string();
        assert!(e.contains("data_batch_3.bin") && e.contains("not found"), "{e}");
        let e = load(&dir.path().join("nope"), Cifar::Ten, DataFormat::Auto).err().unwrap().to_string();
        assert!(e.contains("cs.toronto.edu") && e.contains("data.root"), "{e}");
        // A python batch that is not a pickle.
        let py = tempfile::tempdir().unwrap();
        std::fs::write(py.path().join("test_batch"), b"hello").unwrap();
        for b in 1..=5 {
            std::fs::write(py.path().join(format!("data_batch_{b}")), b"hello").unwrap();
        }
        let e = load(py.path(), Cifar::Ten, DataFormat::Python).err().unwrap().to_string();
        assert!(e.contains("data_batch_1") && e.contains("not a readable pickle"), "{e}");
    }
}
