//! 2-D convolution on f32 NCHW slices, forward and both gradients: per image, an im2col of its
//! patches and one GEMM (the `gemm` crate burn-flex also uses). burn 0.22 computes the weight
//! gradient as a convolution of batch-swapped tensors and the input gradient as a transposed
//! convolution; on ResNet-32 these took 37 % and 19 % of a CPU step (`results/bench_speed.md`).
//!
//! Work is split over groups of images fixed by the geometry (several images share one GEMM on
//! small feature maps), and the weight gradient's partial sums are added in group order, so
//! results do not depend on the number of threads.

use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// Each worker thread's two scratch buffers (patches, GEMM output), kept between calls:
    /// fresh multi-megabyte allocations cost page faults on every task.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `f` with this thread's scratch buffers of `a` and `b` elements. Their contents are stale:
/// callers write every element before reading it.
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let (x, y) = &mut *s;
        if x.len() < a {
            x.resize(a, 0.0);
        }
        if y.len() < b {
            y.resize(b, 0.0);
        }
        f(&mut x[..a], &mut y[..b])
    })
}

/// The sizes of one convolution (groups 1, dilation 1, square stride and padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geometry {
    /// The geometry of `x` (N×C×H×W) convolved with `w` (O×C×kh×kw); `None` when the shapes do
    /// not match or the output would be empty.
    pub fn new(x: [usize; 4], w: [usize; 4], stride: usize, pad: usize) -> Option<Geometry> {
        let [n, cin, h, wd] = x;
        let [cout, wc, kh, kw] = w;
        if wc != cin || stride == 0 || h + 2 * pad < kh || wd + 2 * pad < kw {
            return None;
        }
        let (oh, ow) = ((h + 2 * pad - kh) / stride + 1, (wd + 2 * pad - kw) / stride + 1);
        Some(Geometry { n, cin, h, w: wd, cout, kh, kw, stride, pad, oh, ow })
    }
    /// Rows of the patch matrix: C·kh·kw.
    fn k(&self) -> usize {
        self.cin * self.kh * self.kw
    }
    /// Output pixels per image.
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    /// A 1×1, stride-1, unpadded convolution: the image already is its patch matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }
    pub fn out_shape(&self) -> [usize; 4] {
        [self.n, self.cout, self.oh, self.ow]
    }
}

/// `dst (m×n) += a (m×k) · b (k×n)`, or `=` when `!accumulate`; each operand given by its row
/// and column strides.
#[allow(clippy::too_many_arguments)]
fn mm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) {
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(k == 0 || n == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    // SAFETY: the asserts above keep every index the strides reach inside the slices.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            ::gemm::Parallelism::None,
        )
    }
}

/// The output columns `ow` whose input column `ow·s + kj − pad` lies inside `0..w`.
fn valid_cols(g: &Geometry, kj: usize) -> std::ops::Range<usize> {
    let first = g.pad.saturating_sub(kj).div_ceil(g.stride);
    let last = (g.w + g.pad).saturating_sub(kj).div_ceil(g.stride).min(g.ow);
    first.min(last)..last
}

/// The patch matrix of one image: row `(c·kh + ki)·kw + kj` (rows `ld` apart), column
/// `oh·OW + ow`.
fn im2col(g: &Geometry, x: &[f32], col: &mut [f32], ld: usize) {
    let (p, hw) = (g.p(), g.h * g.w);
    for c in 0..g.cin {
        let plane = &x[c * hw..(c + 1) * hw];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &mut col[((c * g.kh + ki) * g.kw + kj) * ld..][..p];
                let cols = valid_cols(g, kj);
                for oh in 0..g.oh {
                    let out = &mut row[oh * g.ow..(oh + 1) * g.ow];
                    let ih = (oh * g.stride + ki) as isize - g.pad as isize;
                    if ih < 0 || ih >= g.h as isize || cols.is_empty() {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[ih as usize * g.w..][..g.w];
                    out[..cols.start].fill(0.0);
                    out[cols.end..].fill(0.0);
                    let iw0 = cols.start * g.stride + kj - g.pad;
                    if g.stride == 1 {
                        out[cols.clone()].copy_from_slice(&src[iw0..iw0 + cols.len()]);
                    } else {
                        for (o, i) in out[cols.clone()].iter_mut().zip(src[iw0..].iter().step_by(g.stride)) {
                            *o = *i;
                        }
                    }
                }
            }
        }
    }
}

/// Adds a patch matrix back onto its image (the adjoint of `im2col`).
fn col2im_add(g: &Geometry, col: &[f32], dx: &mut [f32]) {
    let (p, hw) = (g.p(), g.h * g.w);
    for c in 0..g.cin {
        let plane = &mut dx[c * hw..(c + 1) * hw];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &col[((c * g.kh + ki) * g.kw + kj) * p..][..p];
                let cols = valid_cols(g, kj);
                if cols.is_empty() {
                    continue;
                }
                for oh in 0..g.oh {
                    let ih = (oh * g.stride + ki) as isize - g.pad as isize;
                    if ih < 0 || ih >= g.h as isize {
                        continue;
                    }
                    let dst = &mut plane[ih as usize * g.w..][..g.w];
                    let src = &row[oh * g.ow..][cols.clone()];
                    let iw0 = cols.start * g.stride + kj - g.pad;
                    for (i, v) in src.iter().enumerate() {
                        dst[iw0 + i * g.stride] += *v;
                    }
                }
            }
        }
    }
}

/// Images whose patches share one GEMM: at least 256 output pixels (4 images of 8×8; 256 to
/// 4096 measured within noise of each other on ResNet-32's layers). Depends on the geometry
/// only, so it also fixes the summation order of the weight gradient.
fn images_per_task(g: &Geometry) -> usize {
    (256 / g.p().max(1)).clamp(1, 32)
}

/// The patch matrices of images `first..first + b` side by side: K rows of `b·P` columns.
fn patches(g: &Geometry, x: &[f32], first: usize, b: usize, col: &mut [f32]) {
    let (p, chw) = (g.p(), g.cin * g.h * g.w);
    for i in 0..b {
        im2col(g, &x[(first + i) * chw..][..chw], &mut col[i * p..], b * p);
    }
}

/// `y = conv(x, w) + b`: N×O×OH×OW.
pub fn forward(g: &Geometry, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let (k, p, chw, per) = (g.k(), g.p(), g.cin * g.h * g.w, images_per_task(g));
    let mut y = vec![0f32; g.n * g.cout * p];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(per * g.cout * p).enumerate().for_each(|(t, ys)| {
        let (first, nb) = (t * per, ys.len() / (g.cout * p));
        let fill_bias = |yi: &mut [f32]| {
            if let Some(b) = b {
                for (o, plane) in yi.chunks_mut(p).enumerate() {
                    plane.fill(b[o]);
                }
            }
        };
        if g.pointwise() {
            for (i, yi) in ys.chunks_mut(g.cout * p).enumerate() {
                fill_bias(yi);
                mm((g.cout, p, k), yi, b.is_some(), w, (k, 1), &x[(first + i) * chw..][..chw], (p, 1));
            }
            return;
        }
        with_scratch(k * nb * p, if nb == 1 { 0 } else { g.cout * nb * p }, |col, out| {
            patches(g, x, first, nb, col);
            if nb == 1 {
                fill_bias(ys);
                return mm((g.cout, p, k), ys, b.is_some(), w, (k, 1), col, (p, 1));
            }
            mm((g.cout, nb * p, k), out, false, w, (k, 1), col, (nb * p, 1));
            for (i, yi) in ys.chunks_mut(g.cout * p).enumerate() {
                for (o, plane) in yi.chunks_mut(p).enumerate() {
                    let src = &out[o * nb * p + i * p..][..p];
                    match b {
                        Some(b) => plane.iter_mut().zip(src).for_each(|(d, v)| *d = v + b[o]),
                        None => plane.copy_from_slice(src),
                    }
                }
            }
        })
    });
    y
}

/// The kernel of the input gradient of a stride-1 convolution: `w` with input and output
/// channels swapped and each kernel turned by 180°.
fn flipped(g: &Geometry, w: &[f32]) -> Vec<f32> {
    let (kh, kw) = (g.kh, g.kw);
    let mut f = vec![0f32; w.len()];
    for o in 0..g.cout {
        for c in 0..g.cin {
            for i in 0..kh {
                for j in 0..kw {
                    f[((c * g.cout + o) * kh + i) * kw + j] =
                        w[((o * g.cin + c) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
                }
            }
        }
    }
    f
}

/// The input gradient. Stride 1 with a square kernel: a forward convolution of `dy` with the
/// flipped kernel; otherwise `dx = col2im(wᵀ · dy)` per image.
pub fn backward_x(g: &Geometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    if g.stride == 1 && g.kh == g.kw && g.pad < g.kh {
        let t = Geometry { cin: g.cout, h: g.oh, w: g.ow, cout: g.cin, pad: g.kh - 1 - g.pad, oh: g.h, ow: g.w, ..*g };
        return forward(&t, dy, &flipped(g, w), None);
    }
    let (k, p, chw) = (g.k(), g.p(), g.cin * g.h * g.w);
    let mut dx = vec![0f32; g.n * chw];
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(4 * chw).enumerate().for_each(|(t, dxs)| {
        with_scratch(k * p, 0, |col, _| {
            for (i, dxi) in dxs.chunks_mut(chw).enumerate() {
                let dyi = &dy[(t * 4 + i) * g.cout * p..][..g.cout * p];
                mm((k, p, g.cout), col, false, w, (1, k), dyi, (p, 1));
                col2im_add(g, col, dxi);
            }
        })
    });
    dx
}

/// The weight gradient: `dw = Σ_images dy · im2col(x)ᵀ`, O×C×kh×kw.
pub fn backward_w(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, p, per) = (g.k(), g.p(), images_per_task(g));
    let partials: Vec<Vec<f32>> = (0..g.n.div_ceil(per))
        .into_par_iter()
        .map(|t| {
            let (first, nb) = (t * per, per.min(g.n - t * per));
            // One image: its gradient (O×P) and, 1×1 stride 1, its input (C×P) are used in place.
            let single = nb == 1;
            let cols = if single && g.pointwise() { 0 } else { k * nb * p };
            with_scratch(cols, if single { 0 } else { g.cout * nb * p }, |col, grads| {
                let patches_of: &[f32] = match (g.pointwise(), single) {
                    (true, true) => &x[first * g.cin * p..][..g.cin * p],
                    (true, false) => {
                        // The images' channels side by side are already the patch matrix.
                        for i in 0..nb {
                            for c in 0..g.cin {
                                col[c * nb * p + i * p..][..p]
                                    .copy_from_slice(&x[((first + i) * g.cin + c) * p..][..p]);
                            }
                        }
                        col
                    }
                    (false, _) => {
                        patches(g, x, first, nb, col);
                        col
                    }
                };
                let grads_of: &[f32] = if single {
                    &dy[first * g.cout * p..][..g.cout * p]
                } else {
                    for i in 0..nb {
                        for o in 0..g.cout {
                            grads[o * nb * p + i * p..][..p]
                                .copy_from_slice(&dy[((first + i) * g.cout + o) * p..][..p]);
                        }
                    }
                    grads
                };
                let mut dw = vec![0f32; g.cout * k];
                mm((g.cout, k, nb * p), &mut dw, false, grads_of, (nb * p, 1), patches_of, (1, nb * p));
                dw
            })
        })
        .collect();
    let mut dw = vec![0f32; g.cout * k];
    for part in &partials {
        for (d, v) in dw.iter_mut().zip(part) {
            *d += v;
        }
    }
    dw
}

/// The bias gradient: `db[o] = Σ dy[·, o, ·, ·]`, summed per image then over images in order.
pub fn backward_b(g: &Geometry, dy: &[f32]) -> Vec<f32> {
    let p = g.p();
    let mut db = vec![0f32; g.cout];
    for img in dy.chunks(g.cout * p) {
        for (o, plane) in img.chunks(p).enumerate() {
            db[o] += plane.iter().sum::<f32>();
        }
    }
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution in f64, the reference.
    fn naive(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f64> {
        let mut y = vec![0f64; g.n * g.cout * g.p()];
        for n in 0..g.n {
            for o in 0..g.cout {
                for oh in 0..g.oh {
                    for ow in 0..g.ow {
                        let mut s = 0f64;
                        for c in 0..g.cin {
                            for ki in 0..g.kh {
                                for kj in 0..g.kw {
                                    let ih = (oh * g.stride + ki) as isize - g.pad as isize;
                                    let iw = (ow * g.stride + kj) as isize - g.pad as isize;
                                    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                        continue;
                                    }
                                    let xv = x[((n * g.cin + c) * g.h + ih as usize) * g.w + iw as usize];
                                    let wv = w[((o * g.cin + c) * g.kh + ki) * g.kw + kj];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((n * g.cout + o) * g.oh + oh) * g.ow + ow] = s;
                    }
                }
            }
        }
        y
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn close(a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((*x as f64 - y).abs() <= 1e-4 * (1.0 + y.abs()), "element {i}: {x} vs {y}");
        }
    }

    /// The geometries ResNets use (3×3 pad 1, stride 1 and 2; 1×1 stride 1 and 2; 7×7 stride 2),
    /// with odd sizes, a batch not a multiple of the task size, a kernel wider than the input,
    /// and maps of one image per task.
    const CASES: &[([usize; 4], [usize; 4], usize, usize)] = &[
        ([5, 3, 7, 6], [4, 3, 3, 3], 1, 1),
        ([3, 4, 9, 8], [5, 4, 3, 3], 2, 1),
        ([6, 6, 5, 5], [3, 6, 1, 1], 1, 0),
        ([2, 6, 7, 5], [3, 6, 1, 1], 2, 0),
        ([2, 3, 11, 10], [2, 3, 7, 7], 2, 3),
        ([1, 2, 2, 2], [2, 2, 3, 3], 1, 1),
        // ≥ 256 output pixels: one image per task, its gradient (and 1×1 input) used in place.
        ([2, 2, 17, 16], [3, 2, 3, 3], 1, 1),
        ([3, 3, 16, 17], [4, 3, 1, 1], 1, 0),
    ];

    #[test]
    fn forward_matches_a_direct_convolution() {
        for &(xs, ws, s, p) in CASES {
            let g = Geometry::new(xs, ws, s, p).unwrap();
            let (x, w) = (data(xs.iter().product(), 1), data(ws.iter().product(), 2));
            let b = data(g.cout, 3);
            let mut want = naive(&g, &x, &w);
            for (i, v) in want.iter_mut().enumerate() {
                *v += b[(i / g.p()) % g.cout] as f64;
            }
            close(&forward(&g, &x, &w, Some(&b)), &want);
        }
    }

    /// The gradients are the adjoints of the forward map: ⟨dy, conv(x, w)⟩ = ⟨dx, x⟩ = ⟨dw, w⟩.
    #[test]
    fn gradients_are_the_adjoints_of_the_forward_map() {
        for &(xs, ws, s, p) in CASES {
            let g = Geometry::new(xs, ws, s, p).unwrap();
            let (x, w) = (data(xs.iter().product(), 4), data(ws.iter().product(), 5));
            let dy = data(g.n * g.cout * g.p(), 6);
            let y = naive(&g, &x, &w);
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
            let lhs: f64 = dy.iter().zip(&y).map(|(a, b)| *a as f64 * b).sum();
            let by_x = dot(&backward_x(&g, &w, &dy), &x);
            let by_w = dot(&backward_w(&g, &x, &dy), &w);
            assert!((lhs - by_x).abs() <= 1e-3 * (1.0 + lhs.abs()), "{xs:?}: {lhs} vs dx {by_x}");
            assert!((lhs - by_w).abs() <= 1e-3 * (1.0 + lhs.abs()), "{xs:?}: {lhs} vs dw {by_w}");
            let db = backward_b(&g, &dy);
            let want: f64 = dy.iter().map(|v| *v as f64).sum();
            assert!((db.iter().map(|v| *v as f64).sum::<f64>() - want).abs() < 1e-3);
        }
    }

    #[test]
    fn gradients_do_not_depend_on_the_thread_count() {
        let g = Geometry::new([9, 3, 6, 6], [4, 3, 3, 3], 1, 1).unwrap();
        let (x, dy) = (data(9 * 3 * 36, 7), data(9 * 4 * 36, 8));
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| backward_w(&g, &x, &dy))
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn mismatched_shapes_have_no_geometry() {
        assert!(Geometry::new([1, 3, 4, 4], [2, 4, 3, 3], 1, 1).is_none());
        assert!(Geometry::new([1, 3, 2, 2], [2, 3, 5, 5], 1, 0).is_none());
    }
}
