//! `npe data --verify`: decode every image file a data set would read, so an unreadable file is
//! found before training, not hours into it.

use super::{Dataset, Masks, Pixels, Split, folder};
use std::path::PathBuf;

/// A file that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The file.
    pub path: PathBuf,
    /// The decoder's or the file system's message.
    pub reason: String,
}

/// The image and label-map files of a split (none for data held in memory).
fn files(split: &Split) -> Vec<(PathBuf, usize)> {
    let mut out = vec![];
    if let Pixels::Files { paths, channels } = &split.pixels {
        out.extend(split.index.iter().map(|&i| (paths[i as usize].clone(), *channels)));
    }
    if let Some(Masks::Files(paths)) = &split.masks {
        out.extend(split.index.iter().map(|&i| (paths[i as usize].clone(), 1)));
    }
    out
}

/// Decode every file of both splits on `threads` threads; the files checked and the unreadable
/// ones, in file order.
pub fn verify(ds: &Dataset, threads: usize) -> (usize, Vec<Unreadable>) {
    let mut all = files(&ds.train);
    all.extend(files(&ds.test));
    check(all, threads)
}

/// The unreadable files of one split.
pub fn verify_split(split: &Split, threads: usize) -> Vec<Unreadable> {
    check(files(split), threads).1
}

fn check(mut all: Vec<(PathBuf, usize)>, threads: usize) -> (usize, Vec<Unreadable>) {
    all.sort();
    all.dedup();
    let threads = threads.max(1);
    let chunk = all.len().div_ceil(threads).max(1);
    let mut bad: Vec<Unreadable> = std::thread::scope(|s| {
        let handles: Vec<_> = all
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter_map(|(path, channels)| {
                            let reason = folder::decode(path, *channels).err()?.to_string();
                            Some(Unreadable { path: path.clone(), reason })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a verify thread panicked")).collect()
    });
    bad.sort_by(|a, b| a.path.cmp(&b.path));
    (all.len(), bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Provenance;
    use std::sync::Arc;

    #[test]
    fn every_unreadable_file_is_listed_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.png");
        image::RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3])).save(&good).unwrap();
        let empty = dir.path().join("empty.jpg");
        std::fs::write(&empty, b"").unwrap();
        let text = dir.path().join("notes.jpg");
        std::fs::write(&text, b"not an image").unwrap();
        let paths = Arc::new(vec![good, empty.clone(), text.clone()]);
        let split = Split::new(Pixels::Files { paths, channels: 3 }, vec![0, 0, 0], None);
        let ds = Dataset {
            name: "t".into(),
            origin: "t".into(),
            provenance: Provenance::Real,
            classes: vec!["a".into()],
            train: split.clone(),
            test: split,
            channels: 3,
            train_counts: vec![3],
            ignore_index: 255,
            skipped_files: vec![],
        };
        let (checked, bad) = verify(&ds, 2);
        assert_eq!(checked, 3);
        assert_eq!(bad.iter().map(|b| b.path.clone()).collect::<Vec<_>>(), [empty, text]);
        assert!(bad.iter().all(|b| b.reason.contains("notes.jpg") || b.reason.contains("empty.jpg")), "{bad:?}");
    }
}
