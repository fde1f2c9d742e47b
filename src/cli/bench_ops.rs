//! `npe bench ops`: the layers of one ResNet-N training step timed one by one (convolutions
//! forward, with the input's and the weights' gradients; batch norm; ReLU and the residual add)
//! on each backend through npe's tensor operations, and on PyTorch (`scripts/bench_ops_pytorch.py`)
//! with the same shapes and method. The table says where a backend's step goes and which kernel
//! is behind PyTorch's: the per-call ratio isolates a library's kernels from npe's graph code.

use super::EXIT_FAILURE;
use super::bench_common::ratio;
use crate::BackendChoice;
use npe_core::backend::Device;
use npe_core::error::Result;
use npe_core::rng::Rng;
use npe_core::tensor::{BatchNormArgs, ConvOpts, Ops, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub(crate) struct OpsBench {
    /// Backends to measure (default: all compiled in).
    #[arg(long, value_enum, value_delimiter = ',')]
    backends: Vec<BackendChoice>,
    /// ResNet depth (6n + 2) whose layers are timed.
    #[arg(long, default_value_t = 32)]
    depth: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Timed repetitions per operation (the median is reported), after two untimed.
    #[arg(long, default_value_t = 9)]
    reps: usize,
    /// CPU threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// A Python with torch to time the same operations with (scripts/bench_ops_pytorch.py).
    #[arg(long, value_name = "PYTHON")]
    pytorch: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One timed operation: what it is, its input shape and how often a step runs it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct OpCase {
    /// `conv_fwd`, `conv_bwd_x`, `conv_bwd_w`, `bn_fwd`, `bn_bwd`, `relu_add_fwd`, `relu_add_bwd`.
    pub op: String,
    /// `[N, C_in, H, W]`.
    pub input: [usize; 4],
    /// Output channels (convolutions), else C_in.
    pub cout: usize,
    /// Stride (convolutions), else 1.
    pub stride: usize,
    /// Calls per training step.
    pub per_step: usize,
}

/// The distinct layers of ResNet-`depth` (CIFAR, option-A shortcuts) at batch `n`, with how
/// many of each one step runs.
pub(crate) fn resnet_layers(depth: usize, n: usize) -> Vec<(String, [usize; 4], usize, usize, usize)> {
    let blocks = (depth - 2) / 6;
    let mut v = vec![("conv".to_string(), [n, 3, 32, 32], 16, 1, 1)];
    for (i, (c, s)) in [(16usize, 32usize), (32, 16), (64, 8)].into_iter().enumerate() {
        let same = if i == 0 { 2 * blocks } else { 2 * blocks - 1 };
        if i > 0 {
            v.push(("conv".into(), [n, c / 2, s * 2, s * 2], c, 2, 1));
        }
        v.push(("conv".into(), [n, c, s, s], c, 1, same));
        // Batch norm after every conv of the stage (the stem's counts with the first stage).
        v.push(("bn".into(), [n, c, s, s], c, 1, 2 * blocks + (i == 0) as usize));
        // Two ReLUs per block (the stem's with the first stage) and one add.
        v.push(("relu_add".into(), [n, c, s, s], c, 1, blocks));
    }
    v
}

/// The cases timed: each layer's forward and backward parts.
fn cases(depth: usize, n: usize) -> Vec<OpCase> {
    let mut out = vec![];
    for (kind, input, cout, stride, per_step) in resnet_layers(depth, n) {
        let parts: &[&str] = match kind.as_str() {
            // The stem's input needs no gradient.
            "conv" if input[1] == 3 => &["fwd", "bwd_w"],
            "conv" => &["fwd", "bwd_x", "bwd_w"],
            _ => &["fwd", "bwd"],
        };
        for p in parts {
            out.push(OpCase { op: format!("{kind}_{p}"), input, cout, stride, per_step });
        }
    }
    out
}

/// Median of `reps` timings (ms) of `f`, after two untimed calls.
fn median_ms(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    f()?;
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            f().map(|()| s.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn random(ops: &dyn Ops, rng: &mut Rng, shape: &[usize], scale: f32, trainable: bool) -> Result<Tensor> {
    let data: Vec<f32> = (0..shape.iter().product()).map(|_| rng.normal() as f32 * scale).collect();
    Ok(ops.parameter(&data, shape, trainable)?)
}

/// The forward of a case, on tracked leaves `x` (and `w`, `b` for conv / bn).
fn forward(ops: &dyn Ops, c: &OpCase, x: &Tensor, w: &Tensor, b: &Tensor, stats: &[Tensor; 2]) -> Result<Tensor> {
    let kind = ["conv", "bn"].into_iter().find(|k| c.op.starts_with(k)).unwrap_or("relu_add");
    Ok(match kind {
        "conv" => ops.conv2d(x, w, None, ConvOpts { stride: c.stride, padding: 1, groups: 1 })?,
        "bn" => {
            let a = BatchNormArgs {
                weight: w,
                bias: b,
                running_mean: &stats[0],
                running_var: &stats[1],
                train: true,
                momentum: 0.1,
                eps: 1e-5,
            };
            ops.batch_norm(x, a)?.0
        }
        // relu(relu(x) + x): a block's second ReLU after its residual add, and the first ReLU.
        _ => ops.relu(&ops.add(&ops.relu(x)?, x)?)?,
    })
}

/// Time one case on `ops`: forward alone, or forward + backward minus forward.
fn time_case(ops: &dyn Ops, c: &OpCase, reps: usize) -> Result<f64> {
    let mut rng = Rng::new(7);
    let [_, cin, ..] = c.input;
    let (grad_x, grad_w) = match c.op.rsplit_once('_').map(|(_, p)| p) {
        Some("x") => (true, false),
        Some("w") => (false, true),
        _ => (true, !c.op.starts_with("relu")),
    };
    let (w_shape, b_shape) =
        if c.op.starts_with("conv") { (vec![c.cout, cin, 3, 3], vec![c.cout]) } else { (vec![cin], vec![cin]) };
    // Stored as parameters (libtorch marks trainability there, burn at `leaf`).
    let xs = random(ops, &mut rng, &c.input, 1.0, grad_x)?;
    let ws = random(ops, &mut rng, &w_shape, 0.1, grad_w)?;
    let bs = random(ops, &mut rng, &b_shape, 0.1, grad_w)?;
    let stats = [ops.upload(&vec![0.0; cin], &[cin])?, ops.upload(&vec![1.0; cin], &[cin])?];
    let all: Vec<usize> = (0..4).collect();
    let run = |backward: bool| -> Result<()> {
        let x = ops.leaf(&xs, grad_x)?;
        let (w, b) = (ops.leaf(&ws, grad_w)?, ops.leaf(&bs, grad_w)?);
        let y = forward(ops, c, &x, &w, &b, &stats)?;
        if backward {
            let g = ops.backward(&ops.sum_dims(&y, &all, false)?)?;
            let wanted = if grad_x { &x } else { &w };
            ops.grad(&g, wanted)?.ok_or("no gradient")?;
        } else {
            ops.shape(&y)?;
        }
        Ok(())
    };
    let fwd = median_ms(reps, || run(false))?;
    if c.op.ends_with("fwd") {
        return Ok(fwd);
    }
    Ok((median_ms(reps, || run(true))? - fwd).max(0.0))
}

/// PyTorch's times of `cases` (ms per call, in order).
fn pytorch(py: &PathBuf, cases: &[OpCase], b: &OpsBench) -> Result<Vec<f64>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_ops_pytorch.py");
    let out = Command::new(py)
        .arg(script)
        .args([b.threads.to_string(), b.reps.to_string(), serde_json::to_string(cases).expect("cases")])
        .output()
        .map_err(|e| format!("{}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!("PyTorch's op benchmark failed:\n{}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let times: Vec<f64> = serde_json::from_slice(&out.stdout).map_err(|e| format!("PyTorch's answer: {e}"))?;
    if times.len() != cases.len() {
        return Err(format!("PyTorch timed {} of {} operations", times.len(), cases.len()).into());
    }
    Ok(times)
}

pub(crate) fn run(b: OpsBench) -> ExitCode {
    match measure(&b) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn measure(b: &OpsBench) -> Result<()> {
    if (b.depth.saturating_sub(2)) % 6 != 0 || b.depth < 8 {
        return Err(format!("--depth {} is not 6n + 2 (e.g. 20, 32, 56)", b.depth).into());
    }
    let backends: Vec<BackendChoice> = if b.backends.is_empty() {
        [BackendChoice::Burn, BackendChoice::Tch].into_iter().filter(|c| c.compiled()).collect()
    } else {
        b.backends.clone()
    };
    let cases = cases(b.depth, b.batch);
    let mut columns: Vec<(String, Vec<f64>)> = vec![];
    for choice in backends {
        choice.ensure_compiled()?;
        let ops = super::session::backend(choice).ops(Device::Cpu, b.threads).map_err(|e| e.to_string())?;
        let times = cases.iter().map(|c| time_case(ops.as_ref(), c, b.reps)).collect::<Result<Vec<f64>>>()?;
        columns.push((choice.to_string(), times));
    }
    if let Some(py) = &b.pytorch {
        columns.push(("pytorch".into(), pytorch(py, &cases, b)?));
    }
    if b.json {
        let rows: Vec<BTreeMap<&str, serde_json::Value>> = cases
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut m = BTreeMap::from([("case", serde_json::to_value(c).expect("case"))]);
                for (name, t) in &columns {
                    m.insert(name.as_str(), t[i].into());
                }
                m
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows"));
        return Ok(());
    }
    print_table(b, &cases, &columns);
    Ok(())
}

fn print_table(b: &OpsBench, cases: &[OpCase], columns: &[(String, Vec<f64>)]) {
    println!(
        "ResNet-{} layers at batch {}, fp32, {} threads: ms per call (median of {}), and per step (× calls per step)\n",
        b.depth, b.batch, b.threads, b.reps
    );
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let vs = |i: usize, name: &str| {
        let torch = columns.iter().find(|(n, _)| n == "pytorch")?;
        let mine = columns.iter().find(|(n, _)| n == name)?;
        // Below 0.05 ms a difference of two medians is noise, not a time.
        (mine.1[i] >= 0.05 && torch.1[i] >= 0.05).then(|| torch.1[i] / mine.1[i])
    };
    let mut head = String::from("| op | input | out | stride | × step |");
    for n in &names {
        head += &format!(" {n} ms |");
    }
    for n in names.iter().filter(|n| **n != "pytorch" && columns.iter().any(|(c, _)| c == "pytorch")) {
        head += &format!(" {n} speed vs PyTorch |");
    }
    println!("{head}");
    println!("|{}", "---|".repeat(head.matches('|').count() - 1));
    for (i, c) in cases.iter().enumerate() {
        let mut row = format!(
            "| {} | {}×{}×{}×{} | {} | {} | {} |",
            c.op, c.input[0], c.input[1], c.input[2], c.input[3], c.cout, c.stride, c.per_step
        );
        for (_, t) in columns {
            row += &format!(" {:.2} |", t[i]);
        }
        for n in names.iter().filter(|n| **n != "pytorch" && columns.iter().any(|(c, _)| c == "pytorch")) {
            row += &format!(" {} |", ratio(vs(i, n)));
        }
        println!("{row}");
    }
    println!("\nper step (Σ calls × ms), by family:\n");
    let families = ["conv_fwd", "conv_bwd_x", "conv_bwd_w", "bn_fwd", "bn_bwd", "relu_add_fwd", "relu_add_bwd"];
    let mut head = "| family |".to_string();
    for n in &names {
        head += &format!(" {n} ms |");
    }
    println!("{head}\n|{}", "---|".repeat(names.len() + 1));
    for fam in families.iter().chain(["total"].iter()) {
        let mut row = format!("| {fam} |");
        for (_, t) in columns {
            let s: f64 = cases
                .iter()
                .zip(t)
                .filter(|(c, _)| *fam == "total" || c.op == *fam)
                .map(|(c, ms)| c.per_step as f64 * ms)
                .sum();
            row += &format!(" {s:.0} |");
        }
        println!("{row}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet_32_has_31_convolutions_and_a_batch_norm_after_each() {
        let layers = resnet_layers(32, 8);
        let count = |k: &str| layers.iter().filter(|l| l.0 == k).map(|l| l.4).sum::<usize>();
        assert_eq!(count("conv"), 31, "the stem and 2 × 15 block convolutions");
        assert_eq!(count("bn"), 31);
        assert_eq!(count("relu_add"), 15, "one per block");
        assert!(layers.iter().all(|l| l.1[0] == 8));
    }
}
