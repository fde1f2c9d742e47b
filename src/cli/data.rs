//! `npe data PIPELINE`: class counts per split, the imbalance factor obtained, and the
//! head/medium/tail membership, without training.

use super::{EXIT_FAILURE, SetArgs, load_ir};
use npe_core::Registry;
use npe_core::data::{self, Dataset};
use npe_core::ir::Ir;
use npe_core::nodes::{GroupsSpec, Iou};
use std::path::Path;
use std::process::ExitCode;

/// The grouping the pipeline's first `accuracy` node uses (or the default).
pub(crate) fn groups_of(ir: &Ir) -> GroupsSpec {
    npe_core::train::primary_groups(ir)
}

pub(crate) fn run(file: &Path, set: &SetArgs, json: bool, verify: bool, registry: &Registry) -> ExitCode {
    let (_, ir) = match load_ir(file, set, registry) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let ds = match data::load(&ir.data_spec, ir.seed) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    if verify {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (checked, bad) = data::verify(&ds, threads);
        if !bad.is_empty() {
            for b in &bad {
                eprintln!("unreadable: {}: {}", b.path.display(), b.reason);
            }
            eprintln!(
                "error: {} of {checked} files cannot be decoded\n  hint: replace or remove them (the loader would stop on the first one mid-epoch)",
                bad.len()
            );
            return ExitCode::from(EXIT_FAILURE);
        }
        eprintln!("verified: all {checked} image files decode");
    }
    let groups = groups_of(&ir);
    let counts: Vec<usize> = ds.train_counts.iter().map(|&c| c as usize).collect();
    // Segmentation: head/tail by the `iou` evaluator's pixel-share threshold.
    let tail_below = ir.nodes_of::<Iou>().map(|(_, i)| i.tail.pixel_fraction_below).next();
    let membership = match (ds.train.is_dense(), tail_below) {
        (true, Some(t)) => ds.train_prior().iter().map(|&p| if p < t { 2 } else { 0 }).collect(),
        _ => groups.assign(&counts),
    };
    let test_counts = if ds.test.is_dense() { vec![] } else { ds.test.class_counts(ds.num_classes()) };
    if json {
        let v = serde_json::json!({
            "pipeline": ir.name, "dataset": ds.name, "origin": ds.origin, "provenance": ds.provenance,
            "classes": ds.classes, "train_images": ds.train.len(), "test_images": ds.test.len(),
            "train_counts": ds.train_counts, "test_counts": test_counts,
            "imbalance_factor": imbalance(&ds.train_counts),
            "groups": membership.iter().map(|&g| ["head", "medium", "tail"][g]).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        return ExitCode::SUCCESS;
    }
    print_table(&ir, &ds, &test_counts, &membership, &groups, tail_below);
    ExitCode::SUCCESS
}

fn imbalance(counts: &[u64]) -> f64 {
    let max = counts.iter().copied().max().unwrap_or(0) as f64;
    let min = counts.iter().copied().filter(|&c| c > 0).min().unwrap_or(1) as f64;
    max / min
}

fn print_table(
    ir: &Ir,
    ds: &Dataset,
    test_counts: &[usize],
    membership: &[usize],
    groups: &GroupsSpec,
    tail_below: Option<f64>,
) {
    println!("{}: {} ({}; {})", ir.name, ds.name, ds.provenance, ds.origin);
    let total: u64 = ds.train_counts.iter().sum();
    let pixels = if ds.train.is_dense() { format!(", {total} labelled pixels") } else { String::new() };
    println!("train: {} images{pixels}, imbalance factor {:.1}", ds.train.len(), imbalance(&ds.train_counts));
    if !test_counts.is_empty() {
        let t: Vec<u64> = test_counts.iter().map(|&c| c as u64).collect();
        println!("test:  {} images, imbalance factor {:.1}", ds.test.len(), imbalance(&t));
    } else {
        println!("test:  {} images", ds.test.len());
    }
    let width = ds.classes.iter().map(|c| c.len()).max().unwrap_or(4).clamp(4, 24);
    let names = ["head", "medium", "tail"];
    if ds.train.is_dense() {
        let prior = ds.train_prior();
        println!("{:>5}  {:<width$}  {:>12}  {:>8}  group", "class", "name", "train pixels", "share %");
        for (i, name) in ds.classes.iter().enumerate() {
            let name: String = name.chars().take(width).collect();
            println!(
                "{i:>5}  {name:<width$}  {:>12}  {:>8.3}  {}",
                ds.train_counts[i],
                100.0 * prior[i],
                names[membership[i]]
            );
        }
        let tails = membership.iter().filter(|&&m| m == 2).count();
        match tail_below {
            Some(t) => println!("tail classes (share of labelled training pixels < {}%): {tails}", 100.0 * t),
            None => println!("(no `iou` evaluator: no tail classes defined)"),
        }
        return;
    }
    println!("{:>5}  {:<width$}  {:>9}  {:>6}  group", "class", "name", "train", "test");
    for (i, name) in ds.classes.iter().enumerate() {
        let test = test_counts.get(i).map_or("-".to_string(), |c| c.to_string());
        let name: String = name.chars().take(width).collect();
        println!("{i:>5}  {name:<width$}  {:>9}  {test:>6}  {}", ds.train_counts[i], names[membership[i]]);
    }
    let how = match groups.by {
        npe_core::nodes::GroupBy::Count => format!("by training count: head > {}, tail < {}", groups.many, groups.few),
        npe_core::nodes::GroupBy::Index => {
            format!(
                "by class index: head [0, {}), tail [{}, {})",
                groups.head.unwrap_or(0),
                groups.tail.unwrap_or(0),
                ds.num_classes()
            )
        }
    };
    let n = |g| membership.iter().filter(|&&m| m == g).count();
    println!("groups ({how}): {} head, {} medium, {} tail", n(0), n(1), n(2));
}
