//! Training-mode batch norm on f32 N×C×S slices (S: the pixels of one channel), forward and
//! backward, each a statistics pass per channel and one affine pass per element. burn 0.22 writes
//! both as chains of tensor ops; on ResNet-32 they took 22 % of a CPU step
//! (`results/bench_speed.md`). Sums run in a fixed order (8 lanes per row, rows added in f64), so
//! results do not depend on the number of threads.

use rayon::prelude::*;

/// The layout of a batch-norm input: `n` images, `c` channels of `s` values each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub n: usize,
    pub c: usize,
    pub s: usize,
}

impl Layout {
    /// N×C×… as N×C×S; `None` for rank < 2 or an empty tensor.
    pub fn of(shape: &[usize]) -> Option<Layout> {
        let (n, c, s) = (*shape.first()?, *shape.get(1)?, shape[2..].iter().product::<usize>());
        (n * c * s > 0).then_some(Layout { n, c, s })
    }
    fn count(&self) -> f64 {
        (self.n * self.s) as f64
    }
    /// Channel `c`'s row in image `i`.
    fn row<'a>(&self, x: &'a [f32], i: usize, c: usize) -> &'a [f32] {
        &x[(i * self.c + c) * self.s..][..self.s]
    }
}

/// Σ f(a_j, b_j) over one row, in 8 lanes.
fn lanes(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += f(x[l], y[l]);
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| f(*x, *y)).sum();
    acc.iter().map(|v| *v as f64).sum::<f64>() + tail as f64
}

/// Per channel, Σ over images of `lanes(row of a, row of b)`.
fn channel_sums(l: &Layout, a: &[f32], b: &[f32], f: impl Fn(usize, f32, f32) -> f32 + Sync) -> Vec<f64> {
    (0..l.c)
        .into_par_iter()
        .map(|c| (0..l.n).map(|i| lanes(l.row(a, i, c), l.row(b, i, c), |x, y| f(c, x, y))).sum())
        .collect()
}

/// `out = x·scale[c] + y·scale2[c] + shift[c]` element-wise (`y` absent: `scale2` unused).
fn affine(l: &Layout, x: &[f32], y: Option<(&[f32], &[f32])>, scale: &[f32], shift: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(l.c * l.s).enumerate().for_each(|(i, img)| {
        for (c, o) in img.chunks_mut(l.s).enumerate() {
            let xr = l.row(x, i, c);
            let (a, b) = (scale[c], shift[c]);
            match y {
                Some((y, scale2)) => {
                    let (yr, a2) = (l.row(y, i, c), scale2[c]);
                    for ((o, x), y) in o.iter_mut().zip(xr).zip(yr) {
                        *o = x * a + y * a2 + b;
                    }
                }
                None => {
                    for (o, x) in o.iter_mut().zip(xr) {
                        *o = x * a + b;
                    }
                }
            }
        }
    });
    out
}

/// What the forward pass returns: the output and the batch statistics.
pub struct Forward {
    pub y: Vec<f32>,
    pub mean: Vec<f32>,
    /// The biased variance (what normalises).
    pub var: Vec<f32>,
    pub invstd: Vec<f32>,
}

/// `y = (x − mean)/√(var + eps)·γ + β` with the batch's statistics.
pub fn forward(l: &Layout, x: &[f32], gamma: &[f32], beta: &[f32], eps: f64) -> Forward {
    let mean: Vec<f64> = channel_sums(l, x, x, |_, v, _| v).into_iter().map(|s| s / l.count()).collect();
    let mean32: Vec<f32> = mean.iter().map(|m| *m as f32).collect();
    let sq = channel_sums(l, x, x, |c, v, _| (v - mean32[c]) * (v - mean32[c]));
    let var: Vec<f64> = sq.into_iter().map(|s| s / l.count()).collect();
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let scale: Vec<f32> = (0..l.c).map(|c| (gamma[c] as f64 * invstd[c]) as f32).collect();
    let shift: Vec<f32> = (0..l.c).map(|c| (beta[c] as f64 - mean[c] * gamma[c] as f64 * invstd[c]) as f32).collect();
    Forward {
        y: affine(l, x, None, &scale, &shift),
        mean: mean32,
        var: var.iter().map(|v| *v as f32).collect(),
        invstd: invstd.iter().map(|v| *v as f32).collect(),
    }
}

/// The gradients `(dx, dγ, dβ)` given `dy`, with `x̂ = (x − mean)·invstd`:
/// `dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂))`, `dγ = Σ dy·x̂`, `dβ = Σ dy`.
pub fn backward(
    l: &Layout,
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    invstd: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let dbeta = channel_sums(l, dy, dy, |_, g, _| g);
    let dgamma: Vec<f64> = channel_sums(l, dy, x, |c, g, v| g * (v - mean[c]))
        .into_iter()
        .zip(invstd)
        .map(|(s, is)| s * *is as f64)
        .collect();
    let m = l.count();
    let (mut on_dy, mut on_x, mut shift) = (vec![0f32; l.c], vec![0f32; l.c], vec![0f32; l.c]);
    for c in 0..l.c {
        let (k, is) = (gamma[c] as f64 * invstd[c] as f64, invstd[c] as f64);
        let (mean_dy, mean_dyxh) = (dbeta[c] / m, dgamma[c] / m);
        on_dy[c] = k as f32;
        on_x[c] = (-k * mean_dyxh * is) as f32;
        shift[c] = (-k * mean_dy + k * mean_dyxh * is * mean[c] as f64) as f32;
    }
    let dx = affine(l, dy, Some((x, &on_x)), &on_dy, &shift);
    (dx, dgamma.iter().map(|v| *v as f32).collect(), dbeta.iter().map(|v| *v as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u64) -> Vec<f32> {
        (0..len as u64).map(|i| ((i * 7919 + seed * 104729) % 997) as f32 / 100.0 - 3.0).collect()
    }

    /// The forward pass in f64, straight from the definition; also the loss `Σ y·r` whose
    /// gradients the test checks by finite differences.
    fn reference(l: &Layout, x: &[f64], gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
        let mut y = vec![0f64; x.len()];
        for c in 0..l.c {
            let idx: Vec<usize> = (0..l.n).flat_map(|i| (0..l.s).map(move |j| (i * l.c + c) * l.s + j)).collect();
            let mean = idx.iter().map(|&k| x[k]).sum::<f64>() / idx.len() as f64;
            let var = idx.iter().map(|&k| (x[k] - mean).powi(2)).sum::<f64>() / idx.len() as f64;
            for &k in &idx {
                y[k] = (x[k] - mean) / (var + eps).sqrt() * gamma[c] + beta[c];
            }
        }
        y
    }

    #[test]
    fn forward_matches_the_definition() {
        let l = Layout::of(&[3, 4, 5, 3]).unwrap();
        let (x, g, b) = (data(180, 1), data(4, 2), data(4, 3));
        let f = forward(&l, &x, &g, &b, 1e-5);
        let f64s = |v: &[f32]| v.iter().map(|x| *x as f64).collect::<Vec<_>>();
        let want = reference(&l, &f64s(&x), &f64s(&g), &f64s(&b), 1e-5);
        for (a, w) in f.y.iter().zip(&want) {
            assert!((*a as f64 - w).abs() < 1e-4 * (1.0 + w.abs()), "{a} vs {w}");
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let l = Layout::of(&[2, 3, 7]).unwrap();
        let (x, g, b, r) = (data(42, 4), data(3, 5), data(3, 6), data(42, 7));
        let f64s = |v: &[f32]| v.iter().map(|x| *x as f64).collect::<Vec<_>>();
        let (x64, g64, b64, r64) = (f64s(&x), f64s(&g), f64s(&b), f64s(&r));
        let loss = |x: &[f64], g: &[f64], b: &[f64]| {
            reference(&l, x, g, b, 1e-5).iter().zip(&r64).map(|(y, r)| y * r).sum::<f64>()
        };
        let f = forward(&l, &x, &g, &b, 1e-5);
        let (dx, dg, db) = backward(&l, &x, &g, &f.mean, &f.invstd, &r);
        let h = 1e-6;
        let numeric = |v: &[f64], k: usize, at: &dyn Fn(&[f64]) -> f64| {
            let (mut up, mut down) = (v.to_vec(), v.to_vec());
            up[k] += h;
            down[k] -= h;
            (at(&up) - at(&down)) / (2.0 * h)
        };
        for k in 0..x.len() {
            let want = numeric(&x64, k, &|v| loss(v, &g64, &b64));
            assert!((dx[k] as f64 - want).abs() < 1e-3 * (1.0 + want.abs()), "dx[{k}] {} vs {want}", dx[k]);
        }
        for c in 0..3 {
            let want_g = numeric(&g64, c, &|v| loss(&x64, v, &b64));
            let want_b = numeric(&b64, c, &|v| loss(&x64, &g64, v));
            assert!((dg[c] as f64 - want_g).abs() < 1e-3 * (1.0 + want_g.abs()), "dγ[{c}] {} vs {want_g}", dg[c]);
            assert!((db[c] as f64 - want_b).abs() < 1e-3 * (1.0 + want_b.abs()), "dβ[{c}] {} vs {want_b}", db[c]);
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let l = Layout::of(&[5, 6, 9]).unwrap();
        let (x, g, b, dy) = (data(270, 8), data(6, 9), data(6, 10), data(270, 11));
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let f = forward(&l, &x, &g, &b, 1e-5);
                (f.y.clone(), backward(&l, &x, &g, &f.mean, &f.invstd, &dy))
            })
        };
        assert_eq!(run(1), run(4));
    }
}
