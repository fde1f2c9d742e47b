//! TensorBoard event files, written directly: TFRecord framing (length, masked CRC-32C) around
//! `Event` protocol buffers with scalar summaries — the format `tensorboard --logdir` reads, with
//! no TensorFlow or protobuf dependency.

use super::summary::EpochRecord;
use std::io::Write;
use std::path::{Path, PathBuf};

/// CRC-32C (Castagnoli), as TFRecord uses it.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

fn masked(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field.
fn bytes_field(field: u32, data: &[u8], out: &mut Vec<u8>) {
    varint(((field << 3) | 2) as u64, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// `Event { wall_time = 1; step = 2; file_version = 3 | summary = 5 }`.
fn event(wall_time: f64, step: i64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut e = vec![(1 << 3) | 1];
    e.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut e);
    varint(step as u64, &mut e);
    body(&mut e);
    e
}

/// `Summary { repeated Value value = 1 }`, `Value { tag = 1; simple_value = 2 }`.
fn summary(scalars: &[(String, f32)]) -> Vec<u8> {
    let mut s = vec![];
    for (tag, v) in scalars {
        let mut value = vec![];
        bytes_field(1, tag.as_bytes(), &mut value);
        value.push((2 << 3) | 5);
        value.extend_from_slice(&v.to_le_bytes());
        bytes_field(1, &value, &mut s);
    }
    s
}

/// An event file being appended to.
pub struct EventWriter {
    path: PathBuf,
}

impl EventWriter {
    /// A new `events.out.tfevents.*` file in `dir`.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let path = dir.join(format!("events.out.tfevents.{}.npe.{}", now.as_secs(), std::process::id()));
        let w = Self { path };
        w.append(&event(now.as_secs_f64(), 0, |e| bytes_field(3, b"brain.Event:2", e)))?;
        Ok(w)
    }

    fn append(&self, data: &[u8]) -> std::io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut rec = Vec::with_capacity(data.len() + 16);
        rec.extend_from_slice(&len);
        rec.extend_from_slice(&masked(crc32c(&len)).to_le_bytes());
        rec.extend_from_slice(data);
        rec.extend_from_slice(&masked(crc32c(data)).to_le_bytes());
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        f.write_all(&rec)?;
        f.flush()
    }

    /// Scalars at `step`.
    pub fn scalars(&self, step: i64, scalars: &[(String, f32)]) -> std::io::Result<()> {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let s = summary(scalars);
        self.append(&event(wall, step, |e| bytes_field(5, &s, e)))
    }

    /// An epoch's record: losses, learning rate, throughput, accuracies, IoUs and prior fits.
    pub fn epoch(&self, r: &EpochRecord) -> std::io::Result<()> {
        let mut s: Vec<(String, f32)> = r.train_loss.iter().map(|(k, v)| (format!("loss/{k}"), *v as f32)).collect();
        s.push(("train/lr".into(), r.lr as f32));
        s.push(("train/images_per_second".into(), r.images_per_second as f32));
        if let Some(e) = &r.eval {
            for (ev, outputs) in &e.accuracy {
                for (out, a) in outputs {
                    s.push((format!("{ev}/{out}/mean_per_class"), a.mean_per_class as f32));
                    for (g, v) in [("head", a.head), ("medium", a.medium), ("tail", a.tail)] {
                        if let Some(v) = v {
                            s.push((format!("{ev}/{out}/{g}"), v as f32));
                        }
                    }
                }
            }
            for (ev, outputs) in &e.segmentation {
                for (out, m) in outputs {
                    s.push((format!("{ev}/{out}/miou"), m.miou as f32));
                }
            }
            for (ev, p) in &e.prior {
                let f = p.train.as_ref().unwrap_or(&p.test);
                s.push((format!("{ev}/r"), f.r as f32));
                s.push((format!("{ev}/slope"), f.slope as f32));
            }
        }
        self.scalars(r.epoch as i64, &s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_masking_match_the_tfrecord_reference_values() {
        // CRC-32C check value of "123456789" (RFC 3720), and TensorFlow's masking.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked(0), 0xa282_ead8);
    }
}
