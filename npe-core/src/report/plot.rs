//! Plots written next to the metrics, as SVG and PNG: learning curves, per-class accuracy (or
//! IoU) of every evaluated output, and the learned prior against the true prior. PNGs are the
//! SVGs rasterised by resvg, with a bundled font so they look the same on every machine.

use super::summary::{EpochRecord, EvalReport};
use crate::error::Result;
use std::fmt::Write;
use std::path::Path;

const PALETTE: [&str; 6] = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"];
const W: f64 = 720.0;
const H: f64 = 360.0;
const M: [f64; 4] = [58.0, 20.0, 60.0, 66.0]; // top, right, bottom, left

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A plot area mapping data coordinates to pixels.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
    svg: String,
}

impl Frame {
    fn new(title: &str, x: (f64, f64), y: (f64, f64), xlabel: &str, ylabel: &str, xticks: bool) -> Self {
        let mut svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="Helvetica, Arial, sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
            W / 2.0,
            esc(title)
        );
        let (x0, y0, x1, y1) = (M[3], H - M[2], W - M[1], M[0]);
        let _ = write!(
            svg,
            r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
            x1 - x0,
            y0 - y1
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            H - 22.0,
            esc(xlabel)
        );
        let _ = write!(
            svg,
            r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (y0 + y1) / 2.0,
            esc(ylabel)
        );
        // Axes end on round numbers, ticks at 1, 2 or 5 × 10^k.
        let (xt, yt) = (nice_ticks(x, 6), nice_ticks(y, 5));
        let x = if xticks { (xt[0], *xt.last().unwrap()) } else { x };
        let y = (yt[0], *yt.last().unwrap());
        let mut f = Frame { x, y, svg };
        if xticks {
            for &v in &xt {
                let px = f.px(v);
                let _ =
                    write!(f.svg, r#"<text x="{px}" y="{}" text-anchor="middle">{}</text>"#, y0 + 16.0, tick(v, &xt));
            }
        }
        for &v in &yt {
            let py = f.py(v);
            let _ = write!(
                f.svg,
                r##"<line x1="{x0}" x2="{x1}" y1="{py}" y2="{py}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                x0 - 4.0,
                py + 4.0,
                tick(v, &yt)
            );
        }
        f
    }
    fn px(&self, v: f64) -> f64 {
        M[3] + (v - self.x.0) / (self.x.1 - self.x.0).max(1e-12) * (W - M[1] - M[3])
    }
    fn py(&self, v: f64) -> f64 {
        H - M[2] - (v - self.y.0) / (self.y.1 - self.y.0).max(1e-12) * (H - M[2] - M[0])
    }
    /// A legend row above the frame; entries are swatches (`None`) or dashed lines (`Some(colour)`).
    fn legend(&mut self, entries: &[(String, Option<&str>)]) {
        let mut x = M[3];
        let mut k = 0;
        for (n, dashed) in entries {
            let y = M[0] - 16.0;
            match dashed {
                None => {
                    let _ = write!(
                        self.svg,
                        r#"<rect x="{x}" y="{}" width="10" height="10" fill="{}"/>"#,
                        y - 9.0,
                        PALETTE[k % 6]
                    );
                    k += 1;
                }
                Some(c) => {
                    let _ = write!(
                        self.svg,
                        r#"<line x1="{x}" x2="{}" y1="{}" y2="{}" stroke="{c}" stroke-dasharray="4 3" stroke-width="2"/>"#,
                        x + 12.0,
                        y - 4.0,
                        y - 4.0
                    );
                }
            }
            let _ = write!(self.svg, r#"<text x="{}" y="{y}">{}</text>"#, x + 16.0, esc(n));
            x += 26.0 + 7.0 * n.chars().count() as f64;
        }
    }
    fn finish(mut self) -> String {
        self.svg.push_str("</svg>\n");
        self.svg
    }
}

/// A line through `pts` (pixel coordinates "x,y"); one point is a dot, none is nothing (a
/// polyline needs two points: renderers warn about shorter ones).
fn line(svg: &mut String, pts: &[String], stroke: &str, attrs: &str) {
    match pts {
        [] => {}
        [p] => {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{stroke}"/>"#);
        }
        _ => {
            let _ = write!(svg, r#"<polyline fill="none" stroke="{stroke}" {attrs} points="{}"/>"#, pts.join(" "));
        }
    }
}

/// A "nice" number close to `x`: 1, 2, 5 or 10 × 10^k (Heckbert, Graphics Gems 1990).
fn nice(x: f64, round: bool) -> f64 {
    let e = x.log10().floor();
    let f = x / 10f64.powf(e);
    let n = match round {
        true if f < 1.5 => 1.0,
        true if f < 3.0 => 2.0,
        true if f < 7.0 => 5.0,
        true => 10.0,
        false if f <= 1.0 => 1.0,
        false if f <= 2.0 => 2.0,
        false if f <= 5.0 => 5.0,
        false => 10.0,
    };
    n * 10f64.powf(e)
}

/// Round tick values covering `(lo, hi)`, about `n` of them, first and last outside or on it.
fn nice_ticks((lo, hi): (f64, f64), n: usize) -> Vec<f64> {
    let span = nice((hi - lo).max(1e-9), false);
    let step = nice(span / (n.max(2) - 1) as f64, true);
    let (a, b) = ((lo / step).floor() as i64, (hi / step).ceil() as i64);
    (a..=b).map(|i| i as f64 * step).collect()
}

/// A tick label with as many decimals as the step needs.
fn tick(v: f64, ticks: &[f64]) -> String {
    let step = if ticks.len() > 1 { ticks[1] - ticks[0] } else { 1.0 };
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{:.*}", decimals, if v.abs() < step * 1e-9 { 0.0 } else { v })
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

/// The series of a report: name → value per output (mean per-class accuracy or mIoU, in %).
fn headline(e: &EvalReport) -> Vec<(String, f64)> {
    let mut v = vec![];
    for outputs in e.accuracy.values() {
        v.extend(outputs.iter().map(|(n, a)| (n.clone(), 100.0 * a.mean_per_class)));
    }
    for outputs in e.segmentation.values() {
        v.extend(outputs.iter().map(|(n, s)| (n.clone(), 100.0 * s.miou)));
    }
    v
}

/// The outputs a report evaluates, in order (mean per-class accuracy or mIoU).
pub fn headline_names(e: &EvalReport) -> Vec<String> {
    headline(e).into_iter().map(|(n, _)| n).collect()
}

/// Each output's headline metric in %, as `(output, value)`.
pub fn headline_values(e: &EvalReport) -> Vec<(String, f64)> {
    headline(e)
}

/// Training loss and test metric per epoch.
pub fn curves(records: &[EpochRecord]) -> String {
    let epochs = records.last().map_or(1, |r| r.epoch) as f64;
    let evals: Vec<(usize, Vec<(String, f64)>)> =
        records.iter().filter_map(|r| r.eval.as_ref().map(|e| (r.epoch, headline(e)))).collect();
    let names: Vec<String> = evals.first().map(|(_, v)| v.iter().map(|(n, _)| n.clone()).collect()).unwrap_or_default();
    let seg = records.iter().any(|r| r.eval.as_ref().is_some_and(|e| !e.segmentation.is_empty()));
    let metric = if seg { "mIoU (%)" } else { "mean per-class accuracy (%)" };
    let yr = range(evals.iter().flat_map(|(_, v)| v.iter().map(|x| x.1)));
    let mut f = Frame::new(
        &format!("test {metric} (lines) and training loss (dashed) per epoch"),
        (0.0, epochs),
        yr,
        "epoch",
        metric,
        true,
    );
    for (i, name) in names.iter().enumerate() {
        let pts: Vec<String> = evals
            .iter()
            .filter_map(|(e, v)| {
                v.iter().find(|x| &x.0 == name).map(|x| format!("{:.1},{:.1}", f.px(*e as f64), f.py(x.1)))
            })
            .collect();
        line(&mut f.svg, &pts, PALETTE[i % 6], r#"stroke-width="2""#);
    }
    // Training loss, scaled onto the right-hand side of the same frame (dashed).
    let losses: Vec<(usize, f64)> =
        records.iter().filter_map(|r| r.train_loss.get("total").map(|l| (r.epoch, *l))).collect();
    let lr = range(losses.iter().map(|x| x.1));
    let scale = |l: f64| yr.0 + (l - lr.0) / (lr.1 - lr.0).max(1e-12) * (yr.1 - yr.0);
    let pts: Vec<String> =
        losses.iter().map(|(e, l)| format!("{:.1},{:.1}", f.px(*e as f64), f.py(scale(*l)))).collect();
    line(&mut f.svg, &pts, "#333", r#"stroke-dasharray="5 4""#);
    let mut legend: Vec<(String, Option<&str>)> = names.into_iter().map(|n| (n, None)).collect();
    legend.push((format!("train loss, rescaled ({:.3} – {:.3})", lr.0.max(0.0), lr.1), Some("#333")));
    f.legend(&legend);
    f.finish()
}

/// Per-class accuracy (or IoU) of every output, classes on the x axis.
pub fn per_class(e: &EvalReport, classes: &[String], train_counts: &[u64]) -> String {
    let mut series: Vec<(String, Vec<f64>)> = vec![];
    for outputs in e.accuracy.values() {
        series.extend(outputs.iter().map(|(n, a)| (n.clone(), a.per_class.iter().map(|x| 100.0 * x).collect())));
    }
    for outputs in e.segmentation.values() {
        series.extend(outputs.iter().map(|(n, s)| (n.clone(), s.per_class_iou.iter().map(|x| 100.0 * x).collect())));
    }
    let what = if e.segmentation.is_empty() { "accuracy" } else { "IoU" };
    let c = classes.len().max(1);
    let mut f = Frame::new(
        &format!("per-class test {what} (%); training count under each class"),
        (0.0, c as f64),
        (0.0, 100.0),
        "class",
        &format!("{what} (%)"),
        false,
    );
    let k = series.len().max(1) as f64;
    let slot = (W - M[1] - M[3]) / c as f64;
    for (s, (_, vals)) in series.iter().enumerate() {
        for (i, v) in vals.iter().enumerate() {
            let x = f.px(i as f64) + slot * (0.1 + 0.8 * s as f64 / k);
            let y = f.py(*v);
            let h = H - M[2] - y;
            if h < 0.05 {
                continue; // a bar of 0 is no bar (and SVG renderers reject zero heights)
            }
            let _ = write!(
                f.svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"/>"#,
                slot * 0.8 / k,
                PALETTE[s % 6]
            );
        }
    }
    if c <= 40 {
        for (i, name) in classes.iter().enumerate() {
            let x = f.px(i as f64) + slot / 2.0;
            let short: String = name.chars().take(10).collect();
            let n = train_counts.get(i).copied().unwrap_or(0);
            let _ = write!(
                f.svg,
                r##"<text x="{x:.1}" y="{}" text-anchor="middle" font-size="10">{}</text><text x="{x:.1}" y="{}" text-anchor="middle" font-size="9" fill="#666">{n}</text>"##,
                H - M[2] + 14.0,
                esc(&short),
                H - M[2] + 26.0
            );
        }
    }
    let names: Vec<(String, Option<&str>)> = series.iter().map(|s| (s.0.clone(), None)).collect();
    f.legend(&names);
    f.finish()
}

/// Learned prior vs true prior, log scale, with the fitted slope and the ideal (slope 1).
pub fn prior(e: &EvalReport) -> Option<String> {
    let (name, p) = e.prior.iter().next()?;
    let fit = p.train.as_ref().unwrap_or(&p.test);
    let xs: Vec<f64> = fit.truth.iter().map(|v| v.max(1e-12).ln()).collect();
    let ys: Vec<f64> = fit.estimate.iter().map(|v| v.max(1e-12).ln()).collect();
    let all = range(xs.iter().chain(&ys).copied());
    let mut f = Frame::new(
        &format!("{name}: learned vs true training prior (r {:.3}, slope {:.3}, KL {:.3})", fit.r, fit.slope, fit.kl),
        all,
        all,
        "log true prior",
        "log learned prior",
        true,
    );
    let (a, b) = (f.px(all.0), f.px(all.1));
    let _ = write!(
        f.svg,
        r##"<line x1="{a}" y1="{}" x2="{b}" y2="{}" stroke="#aaa" stroke-dasharray="4 4"/>"##,
        f.py(all.0),
        f.py(all.1)
    );
    for (i, (x, y)) in xs.iter().zip(&ys).enumerate() {
        let _ = write!(
            f.svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}"><title>class {i}</title></circle>"#,
            f.px(*x),
            f.py(*y),
            PALETTE[0]
        );
    }
    f.legend(&[("classes".into(), None), ("ideal (learned = true)".into(), Some("#aaa"))]);
    Some(f.finish())
}

/// One bar of a grouped chart: label, mean and standard deviation (error bar), in %.
pub struct Bar {
    /// Series (colour) label, e.g. an output.
    pub series: String,
    /// Height.
    pub mean: f64,
    /// Error bar half-length (0: none).
    pub std: f64,
}

/// Grouped bars with error bars: one group per label (e.g. a study's run), one colour per
/// series (e.g. an evaluated output), the same colour for a series in every group.
pub fn grouped_bars(title: &str, ylabel: &str, groups: &[(String, Vec<Bar>)]) -> String {
    let mut series: Vec<&str> = vec![];
    for b in groups.iter().flat_map(|g| &g.1) {
        if !series.contains(&b.series.as_str()) {
            series.push(&b.series);
        }
    }
    let top = groups.iter().flat_map(|g| &g.1).map(|b| b.mean + b.std).fold(0.0, f64::max);
    let top = nice_ticks((0.0, top.max(1e-9)), 5).last().copied().unwrap_or(100.0);
    let n = groups.len().max(1);
    let mut f = Frame::new(title, (0.0, n as f64), (0.0, top), "", ylabel, false);
    let slot = (W - M[1] - M[3]) / n as f64;
    let k = series.len().max(1) as f64;
    for (gi, (label, bars)) in groups.iter().enumerate() {
        for b in bars {
            let s = series.iter().position(|x| *x == b.series).unwrap_or(0);
            let x = f.px(gi as f64) + slot * (0.1 + 0.8 * s as f64 / k);
            let w = slot * 0.8 / k;
            let y = f.py(b.mean);
            let _ = write!(
                f.svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{} {}: {:.2} ± {:.2}</title></rect>"#,
                (H - M[2] - y).max(0.1),
                PALETTE[s % 6],
                esc(label),
                esc(&b.series),
                b.mean,
                b.std
            );
            if b.std > 0.0 {
                let cx = x + w / 2.0;
                let (y0, y1) = (f.py(b.mean - b.std), f.py(b.mean + b.std));
                let _ = write!(
                    f.svg,
                    r##"<line x1="{cx:.1}" x2="{cx:.1}" y1="{y0:.1}" y2="{y1:.1}" stroke="#222"/><line x1="{:.1}" x2="{:.1}" y1="{y1:.1}" y2="{y1:.1}" stroke="#222"/>"##,
                    cx - 3.0,
                    cx + 3.0
                );
            }
        }
        let short: String = label.chars().take(22).collect();
        let _ = write!(
            f.svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"#,
            f.px(gi as f64) + slot / 2.0,
            H - M[2] + 16.0,
            esc(&short)
        );
    }
    let names: Vec<(String, Option<&str>)> = series.iter().map(|s| (s.to_string(), None)).collect();
    f.legend(&names);
    f.finish()
}

/// DejaVu Sans (free licence, `assets/DejaVuSans.LICENSE`): the PNGs' text.
#[cfg(feature = "png")]
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Why there are no PNGs in a build without the `png` feature.
pub const PNG_OFF: &str = "PNG plots are off: npe was built without the `png` feature (resvg), so plots are SVG only";

/// Rasterise one of these SVGs to PNG bytes at `zoom` × its size.
#[cfg(not(feature = "png"))]
pub fn png(_svg: &str, _zoom: f32) -> Result<Vec<u8>> {
    Err(PNG_OFF.into())
}

/// Rasterise one of these SVGs to PNG bytes at `zoom` × its size.
#[cfg(feature = "png")]
pub fn png(svg: &str, zoom: f32) -> Result<Vec<u8>> {
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options { font_family: "DejaVu Sans".into(), ..Default::default() };
    let db = opt.fontdb_mut();
    db.load_font_data(FONT.to_vec());
    db.set_sans_serif_family("DejaVu Sans");
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| e.to_string())?;
    let size = tree.size().to_int_size().scale_by(zoom).ok_or("empty plot")?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("empty plot")?;
    resvg::render(&tree, tiny_skia::Transform::from_scale(zoom, zoom), &mut pixmap.as_mut());
    Ok(pixmap.encode_png().map_err(|e| e.to_string())?)
}

/// Write `name.svg` and `name.png` (twice the size) into `dir`; failures are logged, not fatal.
/// Without the `png` feature only the SVG is written, and the first call says so.
pub fn write_svg_and_png(dir: &Path, name: &str, svg: &str) {
    let mut files = vec![(format!("{name}.svg"), Ok(svg.as_bytes().to_vec()))];
    if cfg!(feature = "png") {
        files.push((format!("{name}.png"), png(svg, 2.0)));
    } else {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| tracing::info!("{PNG_OFF}"));
    }
    for (file, bytes) in files {
        let written = bytes
            .and_then(|b| crate::checkpoint::write_atomic(&dir.join(&file), &b).map_err(crate::error::Error::other));
        if let Err(e) = written {
            tracing::warn!("could not write {file}: {e}");
        }
    }
}

/// The prior fits of a run's evaluations, per epoch: `(name, [(epoch, slope)])` for the PEMs'
/// prior (`PEM`) and the classifier's implied prior (`classifier`), of the first
/// `prior_estimate` evaluator; empty series are left out.
pub fn slope_series(records: &[EpochRecord]) -> Vec<(String, Vec<(usize, f64)>)> {
    let mut pem = vec![];
    let mut classifier = vec![];
    for r in records {
        let Some(p) = r.eval.as_ref().and_then(|e| e.prior.values().next()) else { continue };
        if let Some(f) = &p.train {
            pem.push((r.epoch, f.slope));
        }
        if let Some(f) = &p.train_predicted {
            classifier.push((r.epoch, f.slope));
        }
    }
    [("PEM".to_string(), pem), ("classifier".to_string(), classifier)]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// Slope of the learned log-prior against the true one over training, one line per series,
/// with the calibrated value 1 as a dashed line.
pub fn slope_over_training(title: &str, series: &[(String, Vec<(usize, f64)>)]) -> String {
    let last = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.0)).max().unwrap_or(1) as f64;
    let yr = range(series.iter().flat_map(|(_, v)| v.iter().map(|p| p.1)).chain([1.0]));
    let mut f = Frame::new(title, (0.0, last), yr, "epoch", "slope of −h̄ on log prior (1 = calibrated)", true);
    let one = f.py(1.0);
    let _ = write!(
        f.svg,
        r##"<line x1="{}" x2="{}" y1="{one}" y2="{one}" stroke="#333" stroke-dasharray="5 4"/>"##,
        M[3],
        W - M[1]
    );
    for (i, (_, pts)) in series.iter().enumerate() {
        let xy: Vec<String> = pts.iter().map(|(e, v)| format!("{:.1},{:.1}", f.px(*e as f64), f.py(*v))).collect();
        if xy.len() > 1 {
            line(&mut f.svg, &xy, PALETTE[i % 6], r#"stroke-width="2""#);
        }
        for (e, v) in pts {
            let _ = write!(
                f.svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"><title>epoch {e}: {v:.3}</title></circle>"#,
                f.px(*e as f64),
                f.py(*v),
                PALETTE[i % 6]
            );
        }
    }
    let mut legend: Vec<(String, Option<&str>)> = series.iter().map(|(n, _)| (n.clone(), None)).collect();
    legend.push(("calibrated (slope 1)".into(), Some("#333")));
    f.legend(&legend);
    f.finish()
}

/// Write `curves`, `per_class`, `prior` and, with two or more evaluations of a prior,
/// `prior_slope` (SVG and PNG) into `dir`; failures are logged, not fatal.
pub fn write_all(dir: &Path, records: &[EpochRecord], last: &EvalReport, classes: &[String], counts: &[u64]) {
    let mut files = vec![("curves", curves(records)), ("per_class", per_class(last, classes, counts))];
    if let Some(p) = prior(last) {
        files.push(("prior", p));
    }
    let slopes = slope_series(records);
    if slopes.iter().any(|(_, v)| v.len() > 1) {
        files.push(("prior_slope", slope_over_training("prior slope over training", &slopes)));
    }
    for (name, svg) in files {
        write_svg_and_png(dir, name, &svg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_plot_has_a_line_per_series_a_point_per_evaluation_and_the_line_at_one() {
        let series = vec![("PEM".to_string(), vec![(5, 1.7), (10, 2.3)]), ("classifier".into(), vec![(5, 1.05)])];
        let svg = slope_over_training("t", &series);
        assert_eq!(svg.matches("<polyline").count(), 1, "a line needs two points; one is a dot");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("epoch 10: 2.300"));
        assert!(svg.contains("stroke-dasharray=\"5 4\""), "the calibrated line");
        assert!(svg.contains("calibrated (slope 1)"));
    }

    #[test]
    fn one_evaluation_draws_dots_not_one_point_polylines() {
        let svg = curves(&[EpochRecord {
            epoch: 1,
            global_step: 1,
            lr: 0.1,
            seconds: 1.0,
            images_per_second: 1.0,
            train_loss: [("total".to_string(), 1.0)].into(),
            eval: Some(EvalReport::default()),
        }]);
        assert!(!svg.contains("<polyline"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "the loss of the one epoch");
        #[cfg(feature = "png")]
        png(&svg, 1.0).unwrap();
    }

    #[test]
    fn grouped_bars_colour_a_series_alike_in_every_group() {
        let bar = |s: &str, m: f64, sd: f64| Bar { series: s.into(), mean: m, std: sd };
        let svg = grouped_bars(
            "t",
            "%",
            &[
                ("ce".into(), vec![bar("logits", 48.0, 1.0), bar("posthoc", 59.0, 0.5)]),
                ("npe".into(), vec![bar("logits", 47.0, 0.0), bar("npe", 45.0, 2.0)]),
            ],
        );
        assert_eq!(svg.matches("<rect x=").count(), 4 + 1 + 3, "4 bars, the frame, 3 legend swatches");
        assert_eq!(svg.matches(&format!("fill=\"{}\"><title>", PALETTE[0])).count(), 2, "logits in both groups");
        assert_eq!(svg.matches("stroke=\"#222\"").count(), 2 * 3, "error bars only where std > 0");
    }

    #[cfg(feature = "png")]
    #[test]
    fn pngs_are_the_svgs_rasterised_with_their_text() {
        let bar = |s: &str, m: f64| Bar { series: s.into(), mean: m, std: 0.0 };
        let svg = grouped_bars("title", "%", &[("ce".into(), vec![bar("logits", 48.0)])]);
        let bytes = png(&svg, 2.0).unwrap();
        let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (2 * W as u32, 2 * H as u32));
        // The bar (palette colour) and dark text pixels in the title band (the font rendered).
        let [r, g, b] = [0x4c, 0x72, 0xb0];
        assert!(img.pixels().any(|p| p.0 == [r, g, b]), "the bar is drawn");
        let title_ink = (0..2 * W as u32)
            .flat_map(|x| (20..56).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 100)
            .count();
        assert!(title_ink > 50, "the title's glyphs are drawn ({title_ink} dark pixels)");
        let blank = png(&svg.replace(">title<", "><"), 2.0).unwrap();
        assert_ne!(bytes, blank, "text changes the image");
    }

    #[cfg(not(feature = "png"))]
    #[test]
    fn without_the_png_feature_png_says_why() {
        assert_eq!(png("<svg/>", 1.0).unwrap_err(), PNG_OFF);
    }

    #[test]
    fn ticks_are_round_numbers() {
        let t = nice_ticks((40.9, 87.03), 5);
        assert_eq!(t, vec![40.0, 50.0, 60.0, 70.0, 80.0, 90.0]);
        assert_eq!(t.iter().map(|&v| tick(v, &t)).collect::<Vec<_>>(), ["40", "50", "60", "70", "80", "90"]);
        let t = nice_ticks((0.12, 0.47), 5);
        assert_eq!(t.iter().map(|&v| tick(v, &t)).collect::<Vec<_>>(), ["0.1", "0.2", "0.3", "0.4", "0.5"]);
        let t = nice_ticks((1.0, 15.0), 6);
        assert!(t.iter().all(|v| v.fract() == 0.0) && t[0] <= 1.0 && *t.last().unwrap() >= 15.0, "{t:?}");
    }
}
