//! Progress display: a live bar on a terminal (epoch, step, loss parts, img/s, ETA), periodic
//! log lines otherwise (CI logs, files).

use crate::backend::StepLosses;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar if stderr is a terminal, log lines otherwise.
    Auto,
    /// Log lines every ~10% of an epoch.
    Log,
    /// Nothing but the per-epoch summary.
    Quiet,
}

pub(crate) struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    epoch: usize,
    epochs: usize,
    total: usize,
    started: Instant,
    images: u64,
    last_log: Instant,
}

/// In log mode, at most one step line per this many seconds.
const LOG_EVERY_SECS: f64 = 15.0;

fn short(parts: &StepLosses) -> String {
    let p: Vec<String> = parts.parts.iter().map(|(n, v)| format!("{n} {v:.4}")).collect();
    format!("loss {:.4} ({})", parts.total, p.join(", "))
}

impl Progress {
    pub(crate) fn new(mode: ProgressMode, epochs: usize) -> Self {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Auto,
            ProgressMode::Auto => ProgressMode::Log,
            m => m,
        };
        Self {
            mode,
            bar: None,
            epoch: 0,
            epochs,
            total: 0,
            started: Instant::now(),
            images: 0,
            last_log: Instant::now(),
        }
    }

    pub(crate) fn start_epoch(&mut self, epoch: usize, total: usize, start: usize) {
        self.epoch = epoch;
        self.total = total;
        self.started = Instant::now();
        self.images = 0;
        self.last_log = Instant::now();
        if self.mode == ProgressMode::Auto {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:28.cyan/blue}] {pos}/{len} {msg} eta {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("epoch {}/{}", epoch + 1, self.epochs));
            bar.set_position(start as u64);
            self.bar = Some(bar);
        }
    }

    pub(crate) fn step(&mut self, b: usize, losses: &StepLosses, batch_images: usize, lr: f64) {
        self.images += batch_images as u64;
        let ips = self.images as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                bar.set_message(format!("{} lr {lr:.3e} {ips:.0} img/s", short(losses)));
                bar.set_position(b as u64 + 1);
            }
            (None, ProgressMode::Log)
                if self.last_log.elapsed().as_secs_f64() >= LOG_EVERY_SECS && b + 1 < self.total =>
            {
                let eta = (self.total - b - 1) as f64 * self.started.elapsed().as_secs_f64() / (b + 1) as f64;
                tracing::info!(
                    "epoch {}/{} step {}/{} {} lr {lr:.3e} {ips:.0} img/s, epoch eta {eta:.0} s",
                    self.epoch + 1,
                    self.epochs,
                    b + 1,
                    self.total,
                    short(losses)
                );
                self.last_log = Instant::now();
            }
            _ => {}
        }
    }

    /// Images per second of the epoch so far.
    pub(crate) fn images_per_second(&self) -> f64 {
        self.images as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    pub(crate) fn finish_epoch(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
