//! Image folders (`root/{train,test}/<class>/*.{jpg,png,...}`) and list files
//! (`relative/path label` per line, as ImageNet-LT, Places-LT and iNaturalist ship them).
//! Only paths are collected here; the loader's workers decode images when a batch needs them.

use super::error::{DataError, Result};
use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "ppm", "pgm", "bmp", "webp"];

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Paths and labels of one split.
#[derive(Debug)]
pub struct FileSplit {
    /// One path per sample.
    pub paths: Vec<PathBuf>,
    /// One label per sample.
    pub labels: Vec<u32>,
}

/// Class folder names of `dir`, sorted.
pub fn class_dirs(dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing {
            what: "image folder split".into(),
            path: dir.into(),
            hint: "an image folder has `train/<class>/*.jpg` and `test/<class>/*.jpg` under `data.root`".into(),
        },
        _ => DataError::io(dir, e),
    })?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Read `root/<split>/<class>/*` for the given class order.
pub fn read_folder_split(root: &Path, split: &str, classes: &[String]) -> Result<FileSplit> {
    let dir = root.join(split);
    let present = class_dirs(&dir)?;
    if let Some(extra) = present.iter().find(|p| !classes.contains(p)) {
        return Err(DataError::Invalid(format!(
            "{}: class folder `{extra}` is not among the pipeline's classes ({} classes); list it in `data.classes` or remove it",
            dir.display(),
            classes.len()
        )));
    }
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let cdir = dir.join(class);
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&cdir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file() && is_image(p)).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(DataError::io(&cdir, e)),
        };
        if files.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: class `{class}` has no images (.jpg, .png, ...)",
                cdir.display()
            )));
        }
        files.sort();
        labels.extend(std::iter::repeat_n(label as u32, files.len()));
        paths.extend(files);
    }
    Ok(FileSplit { paths, labels })
}

/// Read a list file: `relative/path label` per line (blank lines skipped), paths under `root`.
/// Every referenced file must exist: a missing one is an error naming the line.
pub fn read_list(root: &Path, list: &Path, classes: usize) -> Result<FileSplit> {
    let path = if list.is_absolute() { list.to_path_buf() } else { root.join(list) };
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing {
            what: "list file".into(),
            path: path.clone(),
            hint: "set `data.train_list` / `data.test_list` to files of `relative/path label` lines, relative to `data.root`".into(),
        },
        _ => DataError::io(&path, e),
    })?;
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |m: String| DataError::BadLine { file: path.clone(), line: i + 1, message: m };
        let (rel, label) =
            line.rsplit_once(char::is_whitespace).ok_or_else(|| bad(format!("expected `path label`, got `{line}`")))?;
        let label: i64 = label.trim().parse().map_err(|_| bad(format!("label `{label}` is not an integer")))?;
        if !(0..classes as i64).contains(&label) {
            return Err(DataError::LabelRange { file: path.clone(), index: i, label, classes });
        }
        let file = root.join(rel.trim());
        if !file.is_file() {
            return Err(bad(format!("image `{}` does not exist", file.display())));
        }
        paths.push(file);
        labels.push(label as u32);
    }
    if paths.is_empty() {
        return Err(DataError::Invalid(format!("{}: the list file has no entries", path.display())));
    }
    Ok(FileSplit { paths, labels })
}

/// Decode an image file (optionally gzipped) to interleaved 8-bit pixels with `channels`
/// (1 = grey, 3 = RGB).
pub fn decode(path: &Path, channels: usize) -> Result<(usize, usize, Vec<u8>)> {
    let bytes = super::idx::read_maybe_gz(path)?;
    let img =
        image::load_from_memory(&bytes).map_err(|e| DataError::Decode { file: path.into(), message: e.to_string() })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data = if channels == 1 { img.into_luma8().into_raw() } else { img.into_rgb8().into_raw() };
    Ok((h, w, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32, v: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(w, h, image::Rgb([v, v / 2, 255 - v])).save(path).unwrap();
    }

    #[test]
    fn folder_round_trip_with_class_order() {
        let d = tempfile::tempdir().unwrap();
        write_png(&d.path().join("train/cat/1.png"), 4, 3, 10);
        write_png(&d.path().join("train/cat/2.png"), 4, 3, 20);
        write_png(&d.path().join("train/ant/1.png"), 4, 3, 30);
        let classes = class_dirs(&d.path().join("train")).unwrap();
        assert_eq!(classes, vec!["ant", "cat"]);
        let s = read_folder_split(d.path(), "train", &classes).unwrap();
        assert_eq!(s.labels, vec![0, 1, 1]);
        let (h, w, px) = decode(&s.paths[1], 3).unwrap();
        assert_eq!((h, w, &px[..3]), (3, 4, &[10u8, 5, 245][..]));
        // A class folder with no images is an error, not silently fewer classes.
        std::fs::create_dir_all(d.path().join("test/ant")).unwrap();
        write_png(&d.path().join("test/cat/1.png"), 4, 3, 1);
        let e = read_folder_split(d.path(), "test", &classes).unwrap_err().to_string();
        assert!(e.contains("class `ant` has no images"), "{e}");
    }

    #[test]
    fn list_files_check_lines_labels_and_files() {
        let d = tempfile::tempdir().unwrap();
        write_png(&d.path().join("img/a.png"), 2, 2, 1);
        write_png(&d.path().join("img/b.png"), 2, 2, 2);
        std::fs::write(d.path().join("ok.txt"), "img/a.png 0\n\nimg/b.png 2\n").unwrap();
        let s = read_list(d.path(), Path::new("ok.txt"), 3).unwrap();
        assert_eq!(s.labels, vec![0, 2]);
        std::fs::write(d.path().join("bad.txt"), "img/a.png 0\nimg/b.png x\n").unwrap();
        let e = read_list(d.path(), Path::new("bad.txt"), 3).unwrap_err().to_string();
        assert!(e.contains("bad.txt:2: label `x` is not an integer"), "{e}");
        std::fs::write(d.path().join("range.txt"), "img/a.png 3\n").unwrap();
        assert!(
            read_list(d.path(), Path::new("range.txt"), 3).unwrap_err().to_string().contains("label 3 of sample 0")
        );
        std::fs::write(d.path().join("gone.txt"), "img/a.png 0\nimg/c.png 1\n").unwrap();
        let e = read_list(d.path(), Path::new("gone.txt"), 3).unwrap_err().to_string();
        assert!(e.contains("gone.txt:2") && e.contains("c.png` does not exist"), "{e}");
        std::fs::write(d.path().join("img/broken.png"), b"\x89PNG\r\n\x1a\nnope").unwrap();
        assert!(
            decode(&d.path().join("img/broken.png"), 3).unwrap_err().to_string().contains("broken.png: cannot decode")
        );
    }
}
