//! A fuzz harness on stable Rust: mutates a corpus of real inputs (plus deeply nested ones)
//! and feeds each mutant to one of npe's parsers. Targets: the pipeline loader + IR validator,
//! the CIFAR binary and python (pickle) readers, the IDX reader (raw and gzipped), the label-map
//! decoder (STARE PPM/PGM, ADE20K PNG) and the checkpoint reader. Every parser must answer
//! with a value or an error: a panic, an abort (a stack overflow is SIGABRT, which no
//! `catch_unwind` sees) or an input that runs past `--timeout-ms` is a crash. Each target runs
//! in a child process that names every input before it runs it, so the parent can tell which
//! one killed it, save it under `fuzz/crashes/`, and carry on from the next; the run fails if
//! any crash was found.
//!
//! ```sh
//! cargo run --release --example fuzz -- [--execs 1000000] [--seed 1] [--timeout-ms 5000] [--target NAME]...
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

const USAGE: &str = "usage: fuzz [--execs N (1000000)] [--seed S (1)] [--timeout-ms MS (5000)] [--target NAME]...
targets: spec cifar_binary cifar_python idx label_map checkpoint (default: all), and the planted
faults that test the harness itself: planted_overflow (a stack overflow), planted_hang (sleeps)";

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

/// A planted fault: unbounded recursion, so the harness's abort detection is itself tested.
fn planted_overflow(bytes: &[u8]) {
    fn down(n: u64, pad: &[u8; 256]) -> u64 {
        std::hint::black_box(pad);
        if n == u64::MAX { 0 } else { 1 + down(n + 1, &[n as u8; 256]) }
    }
    std::hint::black_box(down(bytes.len() as u64, &[0; 256]));
}

/// A planted fault: an input that never finishes, for the per-input time limit.
fn planted_hang(_: &[u8]) {
    std::thread::sleep(std::time::Duration::from_secs(3600));
}

/// Deeply nested inputs, where recursive readers overflow their stack.
fn deep() -> Vec<(&'static str, Vec<u8>)> {
    let n = 20_000;
    let mut lists = b"\x80\x02".to_vec();
    lists.extend(std::iter::repeat_n(b']', n));
    lists.extend(std::iter::repeat_n(b'a', n - 1));
    lists.push(b'.');
    let mut tuples = b"\x80\x02}".to_vec();
    tuples.extend(std::iter::repeat_n(0x85u8, n));
    tuples.push(b'.');
    let yaml_flow = format!("name: d\ndata: {}{}\n", "[".repeat(n), "]".repeat(n)).into_bytes();
    let yaml_block: String = (0..2000).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
    let mut header = format!("{}{}", "{\"a\":".repeat(5000), "}".repeat(5000)).into_bytes();
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.append(&mut header);
    vec![
        ("cifar_python", lists),
        ("cifar_python", tuples),
        ("spec", yaml_flow),
        ("spec", format!("name: d\ndata:\n{yaml_block}").into_bytes()),
        ("checkpoint", st),
    ]
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
    let mut v = plain_corpus(name);
    v.extend(deep().into_iter().filter(|(t, _)| *t == name).map(|(_, b)| b));
    v
}

fn plain_corpus(name: &str) -> Vec<Vec<u8>> {
    let pixels: Vec<u8> = (0..2 * 3072).map(|i| (i % 251) as u8).collect();
    match name {
        "planted_overflow" | "planted_hang" => vec![b"x".to_vec()],
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
                trained_on: Some("{}".into()),
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

/// The inputs of one target under one seed, in order: the seeds first, then mutants. The same
/// (target, seed) always gives the same sequence, so the parent can rebuild the input a child
/// died on.
struct Inputs {
    seeds: Vec<Vec<u8>>,
    r: Rng,
    i: u64,
}

impl Inputs {
    fn new(name: &str, seed: u64) -> Self {
        let seeds = corpus(name);
        assert!(!seeds.is_empty(), "{name}: empty corpus");
        Inputs { seeds, r: Rng::stream(seed, &[npe::core::rng::hash_str(name)]), i: 0 }
    }
    fn next_input(&mut self) -> Vec<u8> {
        let base = self.seeds[self.r.below(self.seeds.len() as u64) as usize].clone();
        let input = if self.i < self.seeds.len() as u64 { base } else { mutate(&mut self.r, &base, &self.seeds) };
        self.i += 1;
        input
    }
    /// Input number `i` (from a fresh sequence).
    fn nth(name: &str, seed: u64, i: u64) -> Vec<u8> {
        let mut s = Inputs::new(name, seed);
        for _ in 0..i {
            s.next_input();
        }
        s.next_input()
    }
}

fn save_crash(name: &str, seed: u64, i: u64, what: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new("fuzz/crashes");
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{name}-{seed}-{i}.{what}"));
    std::fs::write(&path, input).unwrap();
    path
}

fn target_of(name: &str) -> Option<Target> {
    let t: Target = match name {
        "spec" => spec,
        "cifar_binary" => cifar_binary,
        "cifar_python" => cifar_python,
        "idx" => idx_reader,
        "label_map" => label_map,
        "checkpoint" => checkpoint,
        "planted_overflow" => planted_overflow,
        "planted_hang" => planted_hang,
        _ => return None,
    };
    Some(t)
}

/// Child: run inputs `start..execs` of one target, writing `run I` before input I and
/// `panic I FILE` after an input that panicked, and `done PANICS` at the end. A watchdog saves
/// an input that runs past `timeout` and exits 124.
fn child(name: &str, seed: u64, start: u64, execs: u64, timeout: std::time::Duration) -> ExitCode {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    let target = target_of(name).expect("known target");
    std::panic::set_hook(Box::new(|_| {}));
    let mut inputs = Inputs::new(name, seed);
    for _ in 0..start {
        inputs.next_input();
    }
    // (input index + 1, start in ms since t0) of the input running now; 0 = none.
    static RUNNING: AtomicU64 = AtomicU64::new(0);
    static STARTED_MS: AtomicU64 = AtomicU64::new(0);
    let t0 = Instant::now();
    let current = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let current = current.clone();
        let name = name.to_string();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let i = RUNNING.load(Ordering::SeqCst);
                let since = t0.elapsed().as_millis() as u64 - STARTED_MS.load(Ordering::SeqCst);
                if i > 0 && since > timeout.as_millis() as u64 && RUNNING.load(Ordering::SeqCst) == i {
                    // (stdout is the main thread's: the parent knows input i - 1 from `run`.)
                    let input = current.lock().unwrap().clone();
                    save_crash(&name, seed, i - 1, "timeout", &input);
                    std::process::exit(124);
                }
            }
        });
    }
    let mut out = std::io::stdout().lock();
    let mut panics = 0u64;
    for i in start..execs {
        let input = inputs.next_input();
        writeln!(out, "run {i}").unwrap();
        out.flush().unwrap();
        *current.lock().unwrap() = input.clone();
        STARTED_MS.store(t0.elapsed().as_millis() as u64, Ordering::SeqCst);
        RUNNING.store(i + 1, Ordering::SeqCst);
        if std::panic::catch_unwind(|| target(&input)).is_err() {
            panics += 1;
            let path = save_crash(name, seed, i, "panic", &input);
            writeln!(out, "panic {i} {}", path.display()).unwrap();
        }
        RUNNING.store(0, Ordering::SeqCst);
    }
    writeln!(out, "done {panics}").unwrap();
    ExitCode::SUCCESS
}

/// Parent side of one target: run children until `execs` inputs have run, restarting after
/// an input that aborted or hung. (execs, crashes, seconds, crash files).
fn supervise(name: &str, seed: u64, execs: u64, timeout_ms: u64) -> (u64, usize, f64, Vec<String>) {
    use std::io::BufRead;
    let exe = std::env::current_exe().unwrap();
    let t0 = Instant::now();
    let (mut start, mut crashes, mut files) = (0u64, 0usize, vec![]);
    while start < execs {
        let mut c = std::process::Command::new(&exe)
            .args(["--child", name, "--seed", &seed.to_string(), "--start", &start.to_string()])
            .args(["--execs", &execs.to_string(), "--timeout-ms", &timeout_ms.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the harness starts itself");
        let (mut last, mut done) = (None, false);
        for line in std::io::BufReader::new(c.stdout.take().unwrap()).lines() {
            let line = line.unwrap_or_default();
            let mut w = line.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("run"), Some(i), _) => last = i.parse::<u64>().ok(),
                (Some("panic"), Some(_), Some(path)) => {
                    crashes += 1;
                    files.push(path.to_string());
                }
                (Some("done"), _, _) => done = true,
                _ => {}
            }
        }
        let status = c.wait().unwrap();
        if done && status.success() {
            break;
        }
        let Some(i) = last else {
            panic!("{name}: the child died before its first input ({status})");
        };
        crashes += 1;
        if status.code() == Some(124) {
            // The child's watchdog saved input i, which ran past the time limit.
            files.push(format!("fuzz/crashes/{name}-{seed}-{i}.timeout (over {timeout_ms} ms)"));
        } else {
            // Killed by a signal (an abort, a stack overflow) or an unexpected exit: input i.
            let path = save_crash(name, seed, i, "abort", &Inputs::nth(name, seed, i));
            files.push(format!("{} ({status})", path.display()));
        }
        start = i + 1;
    }
    (execs, crashes, t0.elapsed().as_secs_f64(), files)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let num = |flag: &str, default: u64| -> u64 {
        arg(&args, flag).first().map_or(default, |s| s.parse().unwrap_or_else(|_| panic!("{flag} N: got {s}")))
    };
    let (execs, seed, timeout_ms) = (num("--execs", 1_000_000), num("--seed", 1), num("--timeout-ms", 5000));
    if let Some(name) = arg(&args, "--child").first() {
        return child(name, seed, num("--start", 0), execs, std::time::Duration::from_millis(timeout_ms));
    }
    let all = ["spec", "cifar_binary", "cifar_python", "idx", "label_map", "checkpoint"];
    let chosen = arg(&args, "--target");
    if let Some(bad) = chosen.iter().find(|c| target_of(c).is_none()) {
        eprintln!("error: unknown target `{bad}`\n{USAGE}");
        return ExitCode::from(2);
    }
    let targets: Vec<&str> = if chosen.is_empty() { all.to_vec() } else { chosen.iter().map(String::as_str).collect() };
    let results: Vec<(String, (u64, usize, f64, Vec<String>))> = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|&name| s.spawn(move || (name.to_string(), supervise(name, seed, execs, timeout_ms))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    println!("{:<16} {:>10} {:>8} {:>9} {:>10}", "target", "execs", "crashes", "seconds", "execs/s");
    let mut total = 0;
    for (name, (n, crashes, secs, _)) in &results {
        println!("{name:<16} {n:>10} {crashes:>8} {secs:>9.1} {:>10.0}", *n as f64 / secs);
        total += crashes;
    }
    if total > 0 {
        for (name, (_, _, _, files)) in &results {
            for f in files {
                eprintln!("{name}: {f}");
            }
        }
        eprintln!("{total} crashing inputs saved under fuzz/crashes/");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
