//! A conformance suite for backends: the core's layers, losses and optimisers run on a
//! backend's [`Ops`] must give the values PyTorch gives (numbers worked out by hand from
//! PyTorch's formulas). Each backend crate runs [`check_all`] in its tests, so a backend that
//! breaks one operation fails there, not deep inside a training run.

use crate::error::{Context, Result};
use crate::exec::Optimizer;
use crate::kind::{Cx, NodeDef, Targets, Value};
use crate::nn::{cross_entropy, true_class_mean};
use crate::nodes::focal::Focal;
use crate::spec::{OptimizerKind, OptimizerSpec};
use crate::tensor::{BatchNormArgs, Ops, Tensor};
use crate::types::{Init, NodeRef, ParamKind, ParamSpec};

type Check = fn(&dyn Ops) -> Result<()>;

/// Every check, by name.
pub const CHECKS: [(&str, Check); 11] = [
    ("shapes and reductions", shapes_and_reductions),
    ("autodiff gradient", gradient),
    ("sgd matches torch.optim.SGD", sgd),
    ("adamw matches torch.optim.AdamW", adamw),
    ("per-pixel losses skip ignored pixels", pixel_losses),
    ("focal loss", focal),
    ("softplus is stable", softplus),
    ("batch norm and running statistics", batch_norm),
    ("bilinear resize (align_corners = false)", resize),
    ("option-A shortcut", option_a),
    ("grouped convolution and padded max-pool", grouped_and_pool),
];

/// Run every check; the error lists each failure with its name.
pub fn check_all(ops: &dyn Ops) -> Result<usize> {
    let failures: Vec<String> =
        CHECKS.iter().filter_map(|(name, check)| check(ops).err().map(|e| format!("{name}: {e}"))).collect();
    if failures.is_empty() { Ok(CHECKS.len()) } else { Err(failures.join("\n").into()) }
}

/// Run the suite on `backend`'s `device` with `threads` kernel threads and panic with every
/// failure: what a backend's test calls (through [`conformance_tests!`](crate::conformance_tests)).
pub fn assert_passes(backend: &dyn crate::backend::Backend, device: crate::backend::Device, threads: usize) {
    let ops = backend.ops(device, threads).unwrap_or_else(|e| panic!("{} on {device}: {e}", backend.name()));
    let n = check_all(ops.as_ref()).unwrap_or_else(|e| panic!("{} on {device}:\n{e}", backend.name()));
    assert_eq!(n, CHECKS.len());
}

/// A backend crate's conformance tests: `npe_core::conformance_tests!(MyBackend, threads);` in
/// its test module gives a CPU test and, under that crate's `cuda` feature, the same on the
/// first GPU (`scripts/gpu-check.sh` runs it on a CUDA machine).
#[macro_export]
macro_rules! conformance_tests {
    ($backend:expr, $threads:expr) => {
        #[test]
        fn passes_the_core_conformance_suite() {
            $crate::conformance::assert_passes(&$backend, $crate::backend::Device::Cpu, $threads);
        }

        #[cfg(feature = "cuda")]
        #[test]
        fn passes_the_core_conformance_suite_on_cuda() {
            $crate::conformance::assert_passes(&$backend, $crate::backend::Device::Cuda(0), $threads);
        }
    };
}

fn close(got: &[f32], want: &[f64], tol: f64) -> Result<()> {
    let ok = got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (*g as f64 - w).abs() <= tol);
    if ok { Ok(()) } else { Err(format!("got {got:?}, want {want:?}").into()) }
}

fn up(ops: &dyn Ops, v: &[f32], shape: &[usize]) -> Result<Tensor> {
    Ok(ops.upload(v, shape)?)
}

fn get(ops: &dyn Ops, t: &Tensor) -> Result<Vec<f32>> {
    Ok(ops.download(t)?)
}

fn shapes_and_reductions(ops: &dyn Ops) -> Result<()> {
    let x = up(ops, &[1., 5., 3., 4., 2., 6.], &[2, 3])?;
    let e = crate::error::Error::from;
    close(&get(ops, &ops.mean_dims(&x, &[1], false).map_err(e)?)?, &[3.0, 4.0], 1e-6)?;
    let s = ops.sum_dims(&x, &[0], true).map_err(e)?;
    if ops.shape(&s).map_err(e)? != [1, 3] {
        return Err(format!("sum_dims keepdim shape {:?}", ops.shape(&s)).into());
    }
    close(&get(ops, &s)?, &[5.0, 7.0, 9.0], 1e-6)?;
    close(&get(ops, &ops.argmax(&x, 1).map_err(e)?)?, &[1.0, 2.0], 0.0)?;
    let st = ops.stack(&[x.clone(), x.clone()], 0).map_err(e)?;
    if ops.shape(&st).map_err(e)? != [2, 2, 3] {
        return Err("stack shape".into());
    }
    let p = ops.pad(&x, 1, 1, 2).map_err(e)?;
    close(&get(ops, &p)?, &[0., 1., 5., 3., 0., 0., 0., 4., 2., 6., 0., 0.], 0.0)?;
    close(&get(ops, &ops.slice(&x, 1, 0, 3, 2).map_err(e)?)?, &[1., 3., 4., 6.], 0.0)?;
    close(&get(ops, &ops.transpose(&x, 0, 1).map_err(e)?)?, &[1., 4., 5., 2., 3., 6.], 0.0)
}

fn gradient(ops: &dyn Ops) -> Result<()> {
    let e = crate::error::Error::from;
    let p = ops.parameter(&[1.0, -2.0, 3.0], &[3], true).map_err(e)?;
    let leaf = ops.leaf(&p, true).map_err(e)?;
    let loss = ops.sum_all(&ops.mul(&leaf, &leaf).map_err(e)?).map_err(e)?;
    let grads = ops.backward(&loss).map_err(e)?;
    let g = ops.grad(&grads, &leaf).map_err(e)?.ok_or("no gradient")?;
    close(&get(ops, &g)?, &[2.0, -4.0, 6.0], 1e-6)
}

fn spec(name: &str) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        node: "n".into(),
        shape: vec![1],
        init: Init::Zeros,
        kind: ParamKind::Weight,
        decay: true,
    }
}

/// Two steps from p = 1 with gradients 0.5 then 0.2.
fn two_steps(ops: &dyn Ops, opt: &OptimizerSpec) -> Result<Vec<f32>> {
    let mut o = Optimizer::new(opt, &[spec("p")]);
    let mut params = vec![up(ops, &[1.0], &[1])?];
    let mut out = vec![];
    for g in [0.5f32, 0.2] {
        o.step(ops, &mut params, &[Some(up(ops, &[g], &[1])?)], opt.lr).map_err(|e| e.to_string())?;
        out.push(get(ops, &params[0])?[0]);
    }
    Ok(out)
}

/// torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01): step 1: d = 0.51, p = 0.949;
/// step 2: d = 0.20949, buf = 0.9·0.51 + 0.20949 = 0.66849, p = 0.949 − 0.066849.
fn sgd(ops: &dyn Ops) -> Result<()> {
    let opt = OptimizerSpec { lr: 0.1, momentum: 0.9, weight_decay: 0.01, ..Default::default() };
    close(&two_steps(ops, &opt)?, &[0.949, 0.949 - 0.066849], 1e-6)?;
    let nesterov = OptimizerSpec { nesterov: true, weight_decay: 0.0, ..opt };
    close(&two_steps(ops, &nesterov)?[..1], &[1.0 - 0.1 * (0.5 + 0.9 * 0.5)], 1e-6)
}

/// torch.optim.AdamW(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01).
fn adamw(ops: &dyn Ops) -> Result<()> {
    let opt = OptimizerSpec { kind: OptimizerKind::Adamw, lr: 0.1, weight_decay: 0.01, ..Default::default() };
    close(&two_steps(ops, &opt)?, &[0.899000002, 0.8082434839009282], 1e-6)
}

/// logits `[1, 3, 2, 2]` (class-major), labels `[[0, ignore], [2, 1]]`.
const LOGITS: [f32; 12] = [1.0, 2.0, -1.0, 0.5, 0.0, 0.3, 2.0, 1.5, -2.0, 1.0, 0.7, -0.4];
const LABELS: [i64; 4] = [0, -1, 2, 1];

fn pixel_cx_run<R>(ops: &dyn Ops, f: impl FnOnce(&mut Cx, Value) -> Result<R>) -> Result<R> {
    let idx: Vec<i64> = LABELS.iter().map(|&l| l.max(0)).collect();
    let valid: Vec<f32> = LABELS.iter().map(|&l| (l >= 0) as u8 as f32).collect();
    let targets = Targets::Pixels {
        index: ops.upload_index(&idx, &[1, 1, 2, 2])?,
        valid: up(ops, &valid, &[1, 1, 2, 2])?,
        count: 3,
    };
    let log_prior = up(ops, &[0.0; 3], &[3])?;
    let mut cx = Cx::new(ops, &[], true, Some(&targets), &log_prior);
    let logits = Value::Map(up(ops, &LOGITS, &[1, 3, 2, 2])?);
    f(&mut cx, logits)
}

/// Per labelled pixel: (log-sum-exp − z_y, softplus(z_y), p_y).
fn per_pixel() -> Vec<(f64, f64, f64)> {
    (0..4)
        .filter(|&p| LABELS[p] >= 0)
        .map(|p| {
            let z: Vec<f64> = (0..3).map(|c| LOGITS[c * 4 + p] as f64).collect();
            let y = LABELS[p] as usize;
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            (lse - z[y], (1.0 + z[y].exp()).ln(), (z[y] - lse).exp())
        })
        .collect()
}

fn pixel_losses(ops: &dyn Ops) -> Result<()> {
    let want = per_pixel();
    let ce: f64 = want.iter().map(|w| w.0).sum::<f64>() / 3.0;
    let owl: f64 = want.iter().map(|w| w.1).sum::<f64>() / 3.0;
    pixel_cx_run(ops, |cx, logits| {
        let got_ce = cross_entropy(cx, &logits).map_err(|e| e.to_string())?;
        close(&get(ops, &got_ce)?, &[ce], 1e-5)?;
        let got_owl = true_class_mean(cx, &logits, |ops, t| ops.softplus(&t)).map_err(|e| e.to_string())?;
        close(&get(ops, &got_owl)?, &[owl], 1e-5)
    })
}

fn focal(ops: &dyn Ops) -> Result<()> {
    let want = per_pixel();
    let fl: f64 = want.iter().map(|(nll, _, p)| (1.0 - p).powi(2) * nll).sum::<f64>() / 3.0;
    let ce: f64 = want.iter().map(|w| w.0).sum::<f64>() / 3.0;
    for (gamma, expect) in [(2.0, fl), (0.0, ce)] {
        let node = Focal { input: NodeRef::parse("l").unwrap(), gamma, weight: 1.0 };
        pixel_cx_run(ops, |cx, logits| {
            let Value::Loss(l) = node.forward(&(), cx, vec![logits]).map_err(|e| e.to_string())? else {
                return Err("focal did not return a loss".into());
            };
            close(&get(ops, &l)?, &[expect], 1e-5).context(format!("gamma {gamma}"))
        })?;
    }
    Ok(())
}

fn softplus(ops: &dyn Ops) -> Result<()> {
    let y = get(ops, &ops.softplus(&up(ops, &[-100.0, 0.0, 100.0], &[3])?)?)?;
    close(&y, &[0.0, 2f64.ln(), 100.0], 1e-4)?;
    if y.iter().any(|v| !v.is_finite()) { Err(format!("{y:?}").into()) } else { Ok(()) }
}

/// x = [[1, 2], [3, 4], [5, 6], [7, 8]]: channel 0 has mean 4, biased variance 5, unbiased 20/3.
fn batch_norm(ops: &dyn Ops) -> Result<()> {
    let e = crate::error::Error::from;
    let x = up(ops, &[1., 2., 3., 4., 5., 6., 7., 8.], &[4, 2])?;
    let (g, b) = (up(ops, &[1.0, 1.0], &[2])?, up(ops, &[0.0, 0.0], &[2])?);
    let (rm, rv) =
        (ops.parameter(&[0.0, 0.0], &[2], false).map_err(e)?, ops.parameter(&[1.0, 1.0], &[2], false).map_err(e)?);
    let args = |running_mean, running_var, train| BatchNormArgs {
        weight: &g,
        bias: &b,
        running_mean,
        running_var,
        train,
        momentum: 0.1,
        eps: 1e-5,
    };
    let (y, new) = ops.batch_norm(&x, args(&rm, &rv, true)).map_err(e)?;
    let s = (5.0f64 + 1e-5).sqrt();
    close(&get(ops, &y)?, &[-3.0 / s, -3.0 / s, -1.0 / s, -1.0 / s, 1.0 / s, 1.0 / s, 3.0 / s, 3.0 / s], 1e-5)?;
    let (m, v) = new.unwrap_or((rm.clone(), rv.clone()));
    close(&get(ops, &m)?, &[0.4, 0.5], 1e-6)?;
    close(&get(ops, &v)?, &[0.9 + 0.1 * 20.0 / 3.0, 0.9 + 0.1 * 20.0 / 3.0], 1e-5)?;
    // Evaluation uses the given running statistics.
    let (y, none) = ops.batch_norm(&x, args(&m, &v, false)).map_err(e)?;
    if none.is_some() {
        return Err("evaluation returned running statistics".into());
    }
    close(&get(ops, &y)?[..1], &[(1.0 - 0.4) / (0.9f64 + 2.0 / 3.0 + 1e-5).sqrt()], 1e-5)
}

fn resize(ops: &dyn Ops) -> Result<()> {
    let x = up(ops, &[1., 2., 3., 4.], &[1, 1, 2, 2])?;
    let y = get(ops, &ops.resize_bilinear(&x, [4, 4])?)?;
    close(&y[..8], &[1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5], 1e-6)
}

fn option_a(ops: &dyn Ops) -> Result<()> {
    let x = up(ops, &(0..16).map(|v| v as f32).collect::<Vec<_>>(), &[1, 1, 4, 4])?;
    let y = ops.option_a_shortcut(&x, 1)?;
    if ops.shape(&y)? != [1, 3, 2, 2] {
        return Err(format!("shape {:?}", ops.shape(&y)).into());
    }
    close(&get(ops, &y)?, &[0., 0., 0., 0., 0., 2., 8., 10., 0., 0., 0., 0.], 0.0)
}

fn grouped_and_pool(ops: &dyn Ops) -> Result<()> {
    use crate::tensor::{ConvOpts, PoolOpts};
    let e = crate::error::Error::from;
    let x = up(ops, &[1., 2., 3., 4., 5., 6., 7., 8.], &[1, 2, 2, 2])?;
    let w = up(ops, &[2.0, 3.0], &[2, 1, 1, 1])?;
    let y = ops.conv2d(&x, &w, None, ConvOpts { groups: 2, ..ConvOpts::default() }).map_err(e)?;
    close(&get(ops, &y)?, &[2., 4., 6., 8., 15., 18., 21., 24.], 1e-6)?;
    let p = ops.max_pool2d(&x, PoolOpts { kernel: 3, stride: 2, padding: 1 }).map_err(e)?;
    if ops.shape(&p).map_err(e)? != [1, 2, 1, 1] {
        return Err(format!("pool shape {:?}", ops.shape(&p)).into());
    }
    close(&get(ops, &p)?, &[4.0, 8.0], 0.0)
}
