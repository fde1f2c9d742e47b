//! A fuzz harness on stable Rust: mutates a corpus of real inputs and feeds each mutant to one
//! of npe's parsers, in process, catching panics. Targets: the pipeline loader + IR validator,
//! the CIFAR binary and python (pickle) readers, the IDX reader (raw and gzipped), the label-map
//! decoder (STARE PPM/PGM, ADE20K PNG) and the checkpoint reader. Every parser must answer
//! with a value or an error, never a panic; a panicking input is saved under `fuzz/crashes/`
//! and the run fails.
//!
//! ```sh
//! cargo run --release --example fuzz -- [--execs 1000000] [--seed 1] [--target NAME]...
//! ```

use npe::core::checkpoint::Checkpoint;
use npe::core::data::{cifar, idx, pickle, seg};
use npe::core::registry::Registry;
use npe::core::rng::Rng;
use npe::core::source::SourceText;
use npe::core::spec::{Overrides, load_source};
use npe::core::types::NamedTensor;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

type Target = fn(&[u8]);

const FILE: &str = "fuzz-input";

fn spec(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    if let Ok(loaded) = load_source(SourceText::from_string("fuzz.yaml", text), &Overrides::default()) {
        let _ = npe::core::ir::build(&loaded, &Registry::builtin());
    }
}

fn cifar_binary(bytes: &[u8]) {
    let (mut p, mut l) = (vec![], vec![]);
    let _ = cifar::parse_binary(bytes, Path::new(FILE), cifar::Cifar::Ten, &mut p, &mut l);
    let _ = cifar::parse_binary(bytes, Path::new(FILE), cifar::Cifar::Hundred, &mut p, &mut l);
}

fn cifar_python(bytes: &[u8]) {
    let (mut p, mut l) = (vec![], vec![]);
    let _ = cifar::parse_python(bytes, Path::new(FILE), cifar::Cifar::Ten, &mut p, &mut l);
    if let Ok(v) = pickle::load(bytes) {
        let _ = v.get("data").map(|d| pickle::ndarray_u8(&d));
    }
}

fn idx_reader(bytes: &[u8]) {
    if let Ok(raw) = idx::gunzip_if_gz(bytes.to_vec(), Path::new(FILE)) {
        let _ = idx::parse_idx(&raw, Path::new(FILE));
    }
}

fn label_map(bytes: &[u8]) {
    let _ = seg::decode_mask_bytes(bytes.to_vec(), Path::new(FILE));
}

fn checkpoint(bytes: &[u8]) {
    let _ = Checkpoint::from_bytes(bytes, Path::new(FILE));
}

/// Every file under `dirs` with one of `exts`.
fn files(dirs: &[&str], exts: &[&str]) -> Vec<Vec<u8>> {
    let mut out = vec![];
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else { continue };
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|e| exts.iter().any(|x| e == *x)) {
                out.push(std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn image(fmt: image::ImageFormat, grey: bool) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let img = if grey {
        image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(5, 4, |x, y| image::Luma([(x * 50 + y) as u8])))
    } else {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 255])))
    };
    img.write_to(&mut out, fmt).unwrap();
    out.into_inner()
}

/// Seeds of each target: real files where the repository has them, files in the exact release
/// formats (written by the readers' own test writers) otherwise.
fn corpus(name: &str) -> Vec<Vec<u8>> {
    let pixels: Vec<u8> = (0..2 * 3072).map(|i| (i % 251) as u8).collect();
    match name {
        "spec" => files(&["pipelines", "tests/malformed", "examples", "tests/fixtures/v0"], &["yaml", "bin"]),
        "cifar_binary" => {
            vec![cifar::write::binary10(&[3, 7], &pixels), cifar::write::binary100(&[1, 2], &[40, 99], &pixels)]
        }
        "cifar_python" => vec![pickle::write::cifar_batch_py2("labels", &[3, 7], None, &pixels, 2)],
        "idx" => {
            let images = idx::encode_idx(&[2, 3, 4], &pixels[..24]);
            let labels = idx::encode_idx(&[2], &[1, 9]);
            vec![gz(&images), images, labels]
        }
        "label_map" => vec![
            image(image::ImageFormat::Pnm, false),
            image(image::ImageFormat::Pnm, true),
            image(image::ImageFormat::Png, true),
            gz(&image(image::ImageFormat::Pnm, false)),
        ],
        "checkpoint" => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c.safetensors");
            let t = |n: &str, d: Vec<f32>| NamedTensor { name: n.into(), shape: vec![d.len()], data: d };
            let ck = Checkpoint {
                pipeline: "p".into(),
                fingerprint: "f".into(),
                backend: "b".into(),
                position: npe::core::checkpoint::Position { epoch: 1, batch: 3, global_step: 9 },
                params: vec![t("a.weight", vec![1.0, -2.0]), t("a.bias", vec![0.5])],
                optimizer: vec![t("a.weight", vec![0.1, 0.2])],
                seed: Some(0),
                epoch_losses: Some((Default::default(), 3)),
            };
            ck.save(&path).unwrap();
            let mut v = vec![std::fs::read(&path).unwrap()];
            v.extend(files(&["tests/fixtures/v0/run", "tests/fixtures/v0/run/checkpoints"], &["safetensors"]));
            v
        }
        _ => unreachable!(),
    }
}

const INTERESTING: [u32; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff];

/// One to four random edits of `input` (bit flips, bytes, boundary numbers, deletions,
/// duplications, splices from another seed).
fn mutate(r: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + r.below(4) {
        let n = v.len() as u64;
        let at = if n == 0 { 0 } else { r.below(n) as usize };
        match r.below(7) {
            0 if n > 0 => v[at] ^= 1 << r.below(8),
            1 if n > 0 => v[at] = r.below(256) as u8,
            2 => {
                let x = INTERESTING[r.below(8) as usize];
                let bytes = if r.coin() { x.to_le_bytes() } else { x.to_be_bytes() };
                let k = 1 + r.below(4) as usize;
                for (j, b) in bytes[..k].iter().enumerate() {
                    if at + j < v.len() {
                        v[at + j] = *b;
                    }
                }
            }
            3 if n > 0 => {
                let len = 1 + r.below((n - at as u64).min(64)) as usize;
                v.drain(at..(at + len).min(v.len()));
            }
            4 if n > 0 => {
                let len = 1 + r.below((n - at as u64).min(64)) as usize;
                let chunk: Vec<u8> = v[at..(at + len).min(v.len())].to_vec();
                let to = r.below(n + 1) as usize;
                v.splice(to..to, chunk);
            }
            5 => {
                let other = &seeds[r.below(seeds.len() as u64) as usize];
                if !other.is_empty() {
                    let from = r.below(other.len() as u64) as usize;
                    let len = 1 + r.below((other.len() - from).min(128) as u64) as usize;
                    v.splice(at..at, other[from..from + len].iter().copied());
                }
            }
            _ => v.truncate(at),
        }
    }
    v
}

fn arg(args: &[String], flag: &str) -> Vec<String> {
    args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].clone()).collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let execs: u64 = arg(&args, "--execs").first().map_or(1_000_000, |s| s.parse().expect("--execs N"));
    let seed: u64 = arg(&args, "--seed").first().map_or(1, |s| s.parse().expect("--seed N"));
    let all: [(&str, Target); 6] = [
        ("spec", spec),
        ("cifar_binary", cifar_binary),
        ("cifar_python", cifar_python),
        ("idx", idx_reader),
        ("label_map", label_map),
        ("checkpoint", checkpoint),
    ];
    let chosen = arg(&args, "--target");
    let targets: Vec<(&str, Target)> =
        all.into_iter().filter(|(n, _)| chosen.is_empty() || chosen.iter().any(|c| c == n)).collect();
    std::panic::set_hook(Box::new(|_| {}));
    let results: Vec<(String, u64, usize, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|&(name, target)| {
                s.spawn(move || {
                    let seeds = corpus(name);
                    assert!(!seeds.is_empty(), "{name}: empty corpus");
                    let mut r = Rng::stream(seed, &[npe::core::rng::hash_str(name)]);
                    let (t0, mut crashes) = (Instant::now(), 0usize);
                    for i in 0..execs {
                        let base = &seeds[r.below(seeds.len() as u64) as usize];
                        let input = if i < seeds.len() as u64 { base.clone() } else { mutate(&mut r, base, &seeds) };
                        if std::panic::catch_unwind(|| target(&input)).is_err() {
                            crashes += 1;
                            let dir = Path::new("fuzz/crashes");
                            std::fs::create_dir_all(dir).unwrap();
                            std::fs::write(dir.join(format!("{name}-{seed}-{i}")), &input).unwrap();
                        }
                    }
                    (name.to_string(), execs, crashes, t0.elapsed().as_secs_f64())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let _ = std::panic::take_hook();
    println!("{:<14} {:>10} {:>8} {:>9} {:>10}", "target", "execs", "crashes", "seconds", "execs/s");
    let mut total = 0;
    for (name, n, crashes, secs) in &results {
        println!("{name:<14} {n:>10} {crashes:>8} {secs:>9.1} {:>10.0}", *n as f64 / secs);
        total += crashes;
    }
    if total > 0 {
        eprintln!("{total} crashing inputs saved under fuzz/crashes/");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
