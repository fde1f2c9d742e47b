//! What `train`, `eval` and `bench` share: backend/device flags, building a session, printing results.

use super::{EXIT_FAILURE, EXIT_INVALID};
use crate::{BackendChoice, Extensions};
use npe_core::backend::{Backend, Device};
use npe_core::ir::Ir;
use npe_core::report::EvalReport;
use npe_core::report::compare::pct;
use npe_core::train::Session;
use std::process::ExitCode;

/// `--backend` and `--device`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct BackendArgs {
    /// Backend to run on (default: burn if compiled in, else tch).
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Device: `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl BackendArgs {
    /// The chosen backend, or a clear error.
    pub(crate) fn choice(&self) -> Result<BackendChoice, ExitCode> {
        let b = match self.backend.or_else(BackendChoice::default_compiled) {
            Some(b) => b,
            None => {
                eprintln!(
                    "error: this npe was built without any backend: rebuild with `--features burn` or `--features tch`"
                );
                return Err(ExitCode::from(EXIT_INVALID));
            }
        };
        b.ensure_compiled().map_err(|m| {
            eprintln!("error: {m}");
            ExitCode::from(EXIT_INVALID)
        })?;
        Ok(b)
    }

    pub(crate) fn device(&self) -> Result<Device, ExitCode> {
        self.device.parse().map_err(|m: npe_core::error::Error| {
            eprintln!("error: --device: {m}");
            ExitCode::from(EXIT_INVALID)
        })
    }

    /// Error (exit 2) unless the chosen backend can use the device, before any data is read.
    pub(crate) fn check_device(&self) -> Result<(), ExitCode> {
        let (choice, device) = (self.choice()?, self.device()?);
        backend(choice).ops(device, 0).map(drop).map_err(|e| {
            eprintln!("error: --device {device} on backend `{choice}`: {e}");
            ExitCode::from(EXIT_INVALID)
        })
    }
}

/// The backend object for a choice.
pub(crate) fn backend(choice: BackendChoice) -> Box<dyn Backend> {
    match choice {
        #[cfg(feature = "burn")]
        BackendChoice::Burn => Box::new(npe_backend_burn::BurnBackend),
        #[cfg(feature = "tch")]
        BackendChoice::Tch => Box::new(npe_backend_tch::TchBackend),
        #[allow(unreachable_patterns)]
        other => unreachable!("{other} is checked to be compiled in"),
    }
}

/// Build a session or print why not.
pub(crate) fn session(ir: Ir, args: &BackendArgs, ext: &Extensions) -> Result<Session, ExitCode> {
    let choice = args.choice()?;
    let device = args.device()?;
    let b = backend(choice);
    Session::new(ir, &ext.registry, b.as_ref(), device).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_FAILURE)
    })
}

/// Human-readable results: accuracy tables (with per-class rows if asked), prior fit, IoU.
pub(crate) fn print_report(report: &EvalReport, classes: &[String], groups: &[String], per_class: bool) {
    print_accuracy(report, classes, groups, per_class);
    print_segmentation(report, per_class);
    print_calibration(report);
    print_prior(report);
}

/// The accuracy evaluators' tables.
fn print_accuracy(report: &EvalReport, classes: &[String], groups: &[String], per_class: bool) {
    for (ev, outputs) in &report.accuracy {
        println!("\n{ev}: mean per-class accuracy (%) on {} test images", report.test_images);
        println!("  {:<14} {:>8} {:>8} {:>8} {:>8} {:>8}", "output", "mean", "head", "medium", "tail", "overall");
        for (name, a) in outputs {
            println!(
                "  {:<14} {:>8} {:>8} {:>8} {:>8} {:>8}",
                name,
                pct(Some(a.mean_per_class)),
                pct(a.head),
                pct(a.medium),
                pct(a.tail),
                pct(Some(a.overall))
            );
        }
        if per_class {
            let names: Vec<&String> = outputs.keys().collect();
            print!("  {:<5} {:<16} {:<7}", "class", "name", "group");
            for n in &names {
                print!(" {:>10}", n);
            }
            println!();
            for (k, cname) in classes.iter().enumerate() {
                let short: String = cname.chars().take(16).collect();
                print!("  {k:<5} {short:<16} {:<7}", groups.get(k).map_or("", String::as_str));
                for n in &names {
                    print!(" {:>10}", pct(outputs[*n].per_class.get(k).copied()));
                }
                println!();
            }
        }
    }
}

/// The IoU evaluators' tables, with the foreground class of two-class tasks.
fn print_segmentation(report: &EvalReport, per_class: bool) {
    for (ev, outputs) in &report.segmentation {
        println!("\n{ev}: segmentation (%) on {} test images", report.test_images);
        println!("  {:<14} {:>8} {:>10} {:>10} {:>10}", "output", "mIoU", "tail mIoU", "mean acc", "pixel acc");
        for (name, s) in outputs {
            println!(
                "  {:<14} {:>8} {:>10} {:>10} {:>10}",
                name,
                pct(Some(s.miou)),
                pct(s.tail_miou),
                pct(Some(s.mean_pixel_accuracy)),
                pct(Some(s.pixel_accuracy))
            );
        }
        if outputs.values().any(|s| s.binary.is_some()) {
            println!("  foreground (class 1) over the labelled pixels:");
            println!("  {:<14} {:>8} {:>8} {:>8} {:>8} {:>8}", "output", "IoU", "Dice", "sens", "spec", "AUC");
            for (name, s) in outputs {
                let Some(b) = &s.binary else { continue };
                println!(
                    "  {:<14} {:>8} {:>8} {:>8} {:>8} {:>8}",
                    name,
                    pct(s.per_class_iou.get(1).copied()),
                    pct(Some(b.dice)),
                    pct(Some(b.sensitivity)),
                    pct(Some(b.specificity)),
                    pct(b.auc)
                );
            }
        }
        if per_class {
            for (name, s) in outputs {
                let v: Vec<String> = s.per_class_iou.iter().map(|x| format!("{:.1}", 100.0 * x)).collect();
                println!("  {name} per-class IoU: {}", v.join(" "));
                let v: Vec<String> = s.per_class_dice.iter().map(|x| format!("{:.1}", 100.0 * x)).collect();
                println!("  {name} per-class Dice: {}", v.join(" "));
            }
        }
    }
}

/// What the adjusters calibrated on unlabelled training images.
fn print_calibration(report: &EvalReport) {
    if !report.calibration.is_empty() {
        println!("\ncalibrated on unlabelled training images (no labels, no counts):");
        for (node, c) in &report.calibration {
            let v = c.vector.as_ref().map_or(String::new(), |v| {
                let v: Vec<String> = v.iter().take(20).map(|x| format!("{x:.3}")).collect();
                format!("  vector {}", v.join(" "))
            });
            println!("  {node:<12} scale {:.3}{v}", c.scale);
        }
    }
}

/// The prior estimates' fits to the true training prior.
fn print_prior(report: &EvalReport) {
    for (ev, p) in &report.prior {
        println!("\n{ev}: learned prior vs true training prior");
        let rows = [
            ("h̄ over the train split", p.train.as_ref()),
            ("h̄ over the test split", Some(&p.test)),
            ("h̄ posterior read-out", p.train_posterior.as_ref()),
            ("classifier's mean softmax", p.train_predicted.as_ref()),
        ];
        for (what, f) in rows {
            if let Some(f) = f {
                println!(
                    "  {what:<26}: r {:.4}  spearman {:.4}  slope {:.3}  KL {:.4}",
                    f.r, f.spearman, f.slope, f.kl
                );
            }
        }
        if let Some(f) = p.train.as_ref().or(Some(&p.test)) {
            let est: Vec<String> = f.estimate.iter().map(|x| format!("{x:.4}")).collect();
            let tru: Vec<String> = f.truth.iter().map(|x| format!("{x:.4}")).collect();
            if f.truth.len() <= 20 {
                println!("  estimate: {}\n  truth:    {}", est.join(" "), tru.join(" "));
            }
        }
    }
}
