//! Evaluation: read the PEMs on a training subset (the prior estimate, and the dataset-level
//! read-outs `npe_la` may use), then run the executor over the test split and compute every
//! evaluator's metrics on the host.

use super::TrainError;
use super::shard::{Shard, Tally, exchange};
use crate::backend::{Executor, HostTensor, Request};
use crate::data::{Dataset, Loader};
use crate::ir::Ir;
use crate::kind::calibrate::{ClassStats, StatsOf, ln};
use crate::metrics::{Confusion, ScoreHistogram, prior_fit};
use crate::nodes::{Accuracy, GroupsSpec, Iou, NpeLa, PosthocLa, PriorEstimate};
use crate::report::{CalibrationReport, EvalReport, PriorReport};
use std::collections::BTreeMap;

/// What to ask the executor for, on the test split and on the training subset.
struct Plan {
    requests: Vec<Request>,
    train: Vec<Request>,
    /// Adjusters calibrated on the training subset.
    calibrated: Vec<(String, Calibrated)>,
}

/// An adjuster that calibrates on unlabelled training images.
enum Calibrated {
    Npe(NpeLa),
    Posthoc(PosthocLa),
}

impl Calibrated {
    fn requests(&self) -> Vec<Request> {
        match self {
            Calibrated::Npe(n) => n.calibration_requests(),
            Calibrated::Posthoc(n) => n.calibration_requests(),
        }
    }

    fn calibrate(&self, stats: StatsOf) -> (Option<Vec<f64>>, f64) {
        match self {
            Calibrated::Npe(n) => n.calibrate(stats),
            Calibrated::Posthoc(n) => n.calibrate(stats),
        }
    }
}

fn add(list: &mut Vec<Request>, r: Request) {
    if !list.contains(&r) {
        list.push(r);
    }
}

impl Plan {
    fn new(ir: &Ir) -> Self {
        let (mut requests, mut train, mut calibrated) = (vec![], vec![], vec![]);
        for (node, op) in ir.ops() {
            let any = op.as_any();
            if let Some(a) = any.downcast_ref::<Accuracy>() {
                a.inputs.iter().for_each(|i| add(&mut requests, Request::Argmax(i.node.clone())));
            } else if let Some(a) = any.downcast_ref::<Iou>() {
                a.inputs.iter().for_each(|i| add(&mut requests, Request::Argmax(i.node.clone())));
                // Two classes (vessels): the logits too, for the AUC of the foreground probability.
                if ir.data.num_classes == 2 {
                    a.inputs.iter().for_each(|i| add(&mut requests, Request::Output(i.node.clone())));
                }
            } else if let Some(p) = any.downcast_ref::<PriorEstimate>() {
                add(&mut requests, Request::SpatialMean(p.input.node.clone()));
                add(&mut train, Request::SpatialMean(p.input.node.clone()));
                if let Some(l) = &p.logits {
                    add(&mut train, posterior(&p.input.node, &l.node));
                    add(&mut train, predicted(&l.node));
                }
            } else {
                let c = match (any.downcast_ref::<NpeLa>(), any.downcast_ref::<PosthocLa>()) {
                    (Some(n), _) => Calibrated::Npe(n.clone()),
                    (_, Some(n)) => Calibrated::Posthoc(n.clone()),
                    _ => continue,
                };
                let r = c.requests();
                if !r.is_empty() {
                    r.into_iter().for_each(|r| add(&mut train, r));
                    calibrated.push((node.name.clone(), c));
                }
            }
        }
        Self { requests, train, calibrated }
    }
}

fn posterior(pem: &str, logits: &str) -> Request {
    Request::ClassSums { values: Some(pem.into()), weights: Some(logits.into()) }
}

fn predicted(logits: &str) -> Request {
    Request::ClassSums { values: None, weights: Some(logits.into()) }
}

/// The adjusters of `ir` that calibrate on unlabelled training images (what
/// `calibration.json` must hold for them).
pub fn calibrated_nodes(ir: &Ir) -> Vec<String> {
    Plan::new(ir).calibrated.into_iter().map(|(n, _)| n).collect()
}

/// Whether evaluating `ir` reads the training images (prior estimate or `npe_la` read-outs).
pub fn reads_training_images(ir: &Ir) -> bool {
    !Plan::new(ir).train.is_empty()
}

/// Class groups (0 head, 1 medium, 2 tail) of `groups` given training counts.
pub fn class_groups(groups: &GroupsSpec, counts: &[u64]) -> Vec<usize> {
    let c: Vec<usize> = counts.iter().map(|&n| n as usize).collect();
    groups.assign(&c)
}

/// One batch's `Σ h̄` per class from a `[M, N, C]` tensor (`h̄` averaged over the M PEM
/// members), and its image count N.
fn pem_part(t: &HostTensor) -> (Vec<f64>, u64) {
    let (m, n, c) = (t.shape[0], t.shape[1], t.shape[2]);
    let mut sum = vec![0.0; c];
    for mi in 0..m {
        for ni in 0..n {
            for k in 0..c {
                sum[k] += t.data[(mi * n + ni) * c + k] as f64 / m as f64;
            }
        }
    }
    (sum, n as u64)
}

/// Add a batch's part into a running per-class sum.
fn add_part(sum: &mut Vec<f64>, part: &[f64]) {
    sum.resize(part.len(), 0.0);
    sum.iter_mut().zip(part).for_each(|(s, p)| *s += p);
}

/// Evaluate `exec` on `ds`'s test split (`test`), and on `prior_train` for the prior estimate.
pub fn evaluate(
    ir: &Ir,
    ds: &Dataset,
    exec: &mut dyn Executor,
    test: &Loader,
    prior_train: Option<&Loader>,
) -> Result<EvalReport, TrainError> {
    let plan = Plan::new(ir);
    let classes = ds.num_classes();
    let mut report = EvalReport::default();
    if plan.requests.is_empty() && plan.train.is_empty() {
        return Ok(report);
    }
    // The training subset first: the read-outs `npe_la` needs on the test split.
    let t_train = std::time::Instant::now();
    let train = train_pass(&plan, exec, prior_train, classes)?;
    for (node, c) in &plan.calibrated {
        let (vector, scale) = c.calibrate(&|r| train.stats(r));
        let host =
            vector.as_ref().map(|v| HostTensor { shape: vec![v.len()], data: v.iter().map(|&x| x as f32).collect() });
        exec.set_calibration(node, host.as_ref(), scale)?;
        report.calibration.insert(node.clone(), CalibrationReport { scale, vector });
    }
    report.train_pass_seconds = t_train.elapsed().as_secs_f64();
    let t_test = std::time::Instant::now();
    let tallies = test_pass(&plan, exec, test, classes)?;
    report.test_images = tallies.images;
    report.test_pass_seconds = t_test.elapsed().as_secs_f64();
    metrics(ir, ds, &tallies, &train, prior_train.is_some(), &mut report);
    Ok(report)
}

/// What the pass over unlabelled training images gathered.
#[derive(Default)]
struct TrainTallies {
    /// Per PEM node: the sum of its centred outputs, and how many images.
    pem_sums: BTreeMap<String, (Vec<f64>, u64)>,
    /// Per request of the plan's training pass: class statistics.
    class_stats: Vec<(Request, ClassStats)>,
}

impl TrainTallies {
    /// The statistics gathered for `want` (empty if none were).
    fn stats(&self, want: &Request) -> ClassStats {
        self.class_stats.iter().find(|(r, _)| r == want).map(|(_, s)| s.clone()).unwrap_or_default()
    }
}

/// Run the plan's training-image requests over `prior_train` (an error if they are needed and
/// `eval.prior_train_samples` is 0), this rank's share of the batches, merged over the ranks.
fn train_pass(
    plan: &Plan,
    exec: &mut dyn Executor,
    prior_train: Option<&Loader>,
    classes: usize,
) -> Result<TrainTallies, TrainError> {
    let mut t = TrainTallies {
        class_stats: plan.train.iter().map(|r| (r.clone(), ClassStats::default())).collect(),
        ..Default::default()
    };
    if plan.train.is_empty() {
        return Ok(t);
    }
    let Some(loader) = prior_train else {
        return Err(TrainError::Exec(crate::backend::ExecError::Unavailable(
            "evaluation reads the training images (prior_estimate, or npe_la with a readout) but \
             `eval.prior_train_samples` is 0\n  hint: set it > 0 (default 5000)"
                .into(),
        )));
    };
    // Per batch, per request: a PEM's Σ h̄ (C values, its image count in `counts`), or the
    // `[3, C]` class sums.
    let shard = Shard::of(exec);
    let mut mine = Tally::new(plan.train.len());
    let mut it = loader.iter_every(0, shard.rank, shard.ranks);
    while let Some(batch) = it.next() {
        let b = it.position() - shard.ranks;
        let out = exec.infer(&batch?, &plan.train)?;
        let mut part = Vec::new();
        for (i, (r, host)) in plan.train.iter().zip(&out).enumerate() {
            match r {
                Request::SpatialMean(_) => {
                    let (sum, n) = pem_part(host);
                    part.extend(sum);
                    mine.counts[i] += n;
                }
                _ => part.extend(host.data.iter().map(|&v| v as f64)),
            }
        }
        mine.parts.push((b, part));
    }
    let all = exchange(exec, "eval-train-images", mine)?;
    for (_, part) in &all.parts {
        let mut at = 0;
        for ((r, (_, acc)), &n) in plan.train.iter().zip(&mut t.class_stats).zip(&all.counts) {
            match r {
                Request::SpatialMean(node) => {
                    let e = t.pem_sums.entry(node.clone()).or_insert_with(|| (vec![0.0; classes], 0));
                    add_part(&mut e.0, &part[at..at + classes]);
                    e.1 = n;
                    at += classes;
                }
                _ => {
                    let rows: Vec<f32> = part[at..at + 3 * classes].iter().map(|&v| v as f32).collect();
                    acc.add(&rows);
                    at += 3 * classes;
                }
            }
        }
    }
    Ok(t)
}

/// What the pass over the test split gathered.
#[derive(Default)]
struct TestTallies {
    /// Per classifier output: its confusion matrix.
    confusion: BTreeMap<String, Confusion>,
    /// Per PEM node: the sum of its centred outputs, and how many images.
    pem_sums: BTreeMap<String, (Vec<f64>, u64)>,
    /// Per two-class segmentation output: the score histogram (AUC).
    scores: BTreeMap<String, ScoreHistogram>,
    /// Test images seen.
    images: usize,
}

/// Words of request `r`'s counts in the test pass's tally: a confusion's margins, or a
/// presence flag and a score histogram's bins.
fn test_counts(r: &Request, classes: usize) -> usize {
    match r {
        Request::Argmax(_) => 3 * classes,
        Request::SpatialMean(_) => 1,
        Request::Output(_) => 1 + ScoreHistogram::COUNTS,
        Request::ClassSums { .. } => 0,
    }
}

/// Run the plan's test requests over `test`: this rank's share of the batches, merged over
/// the ranks.
fn test_pass(plan: &Plan, exec: &mut dyn Executor, test: &Loader, classes: usize) -> Result<TestTallies, TrainError> {
    let shard = Shard::of(exec);
    let (mut confusion, mut scores): (Vec<Option<Confusion>>, Vec<Option<ScoreHistogram>>) =
        plan.requests.iter().map(|_| (None, None)).unzip();
    let mut mine = Tally::new(0);
    let (mut pem_images, mut images) = (vec![0u64; plan.requests.len()], 0u64);
    let mut it = test.iter_every(0, shard.rank, shard.ranks);
    while let Some(batch) = it.next() {
        let b = it.position() - shard.ranks;
        let batch = batch?;
        let out = exec.infer(&batch, &plan.requests)?;
        let mut part = Vec::new();
        for (i, (r, host)) in plan.requests.iter().zip(&out).enumerate() {
            match r {
                Request::Argmax(_) => {
                    confusion[i].get_or_insert_with(|| Confusion::new(classes)).add(&host.data, &batch.labels)
                }
                Request::SpatialMean(_) => {
                    let (sum, n) = pem_part(host);
                    part.extend(sum);
                    pem_images[i] += n;
                }
                Request::Output(_) if host.shape.len() == 4 && host.shape[1] == 2 => {
                    scores[i].get_or_insert_with(Default::default).add_logits(&host.data, &host.shape, &batch.labels)
                }
                Request::Output(_) | Request::ClassSums { .. } => {}
            }
        }
        mine.parts.push((b, part));
        images += batch.len() as u64;
    }
    for (i, r) in plan.requests.iter().enumerate() {
        match r {
            Request::Argmax(_) => {
                mine.counts.extend(confusion[i].as_ref().map_or(vec![0; 3 * classes], Confusion::counts))
            }
            Request::SpatialMean(_) => mine.counts.push(pem_images[i]),
            Request::Output(_) => {
                mine.counts.push(scores[i].is_some() as u64);
                mine.counts.extend(scores[i].as_ref().map_or(vec![0; ScoreHistogram::COUNTS], ScoreHistogram::counts));
            }
            Request::ClassSums { .. } => {}
        }
        debug_assert_eq!(mine.counts.len(), plan.requests[..=i].iter().map(|r| test_counts(r, classes)).sum::<usize>());
    }
    mine.counts.push(images);
    let all = exchange(exec, "eval-test", mine)?;
    Ok(TestTallies::of(plan, &all, classes))
}

impl TestTallies {
    /// The merged tally of the test pass, in [`test_pass`]'s layout.
    fn of(plan: &Plan, all: &Tally, classes: usize) -> Self {
        let mut t = TestTallies { images: *all.counts.last().unwrap_or(&0) as usize, ..Default::default() };
        let mut at = 0;
        for r in &plan.requests {
            let counts = &all.counts[at..at + test_counts(r, classes)];
            at += counts.len();
            match r {
                Request::Argmax(node) => {
                    t.confusion.entry(node.clone()).or_insert_with(|| Confusion::new(classes)).add_counts(counts)
                }
                Request::SpatialMean(node) => {
                    t.pem_sums.insert(node.clone(), (vec![0.0; classes], counts[0]));
                }
                Request::Output(node) if counts[0] > 0 => {
                    t.scores.entry(node.clone()).or_default().add_counts(&counts[1..])
                }
                Request::Output(_) | Request::ClassSums { .. } => {}
            }
        }
        for (_, part) in &all.parts {
            let pems = plan.requests.iter().filter_map(|r| match r {
                Request::SpatialMean(node) => Some(node),
                _ => None,
            });
            for (node, sum) in pems.zip(part.chunks(classes)) {
                add_part(&mut t.pem_sums.get_mut(node).expect("inserted above").0, sum);
            }
        }
        t
    }
}

/// Each evaluator node's metrics from the passes' tallies, into `report`.
fn metrics(ir: &Ir, ds: &Dataset, test: &TestTallies, train: &TrainTallies, read_train: bool, report: &mut EvalReport) {
    let truth = ds.train_prior();
    for (node, op) in ir.ops() {
        let any = op.as_any();
        if let Some(a) = any.downcast_ref::<Accuracy>() {
            let groups = class_groups(&a.groups, &ds.train_counts);
            let m = a.inputs.iter().map(|i| (i.node.clone(), test.confusion[&i.node].accuracy(&groups))).collect();
            report.accuracy.insert(node.name.clone(), m);
        } else if let Some(a) = any.downcast_ref::<Iou>() {
            let tail: Vec<bool> = truth.iter().map(|&p| p < a.tail.pixel_fraction_below).collect();
            let metrics = |node: &str| {
                let mut m = test.confusion[node].segmentation(&tail);
                if let (Some(b), Some(h)) = (m.binary.as_mut(), test.scores.get(node)) {
                    b.auc = h.auc();
                }
                m
            };
            let m = a.inputs.iter().map(|i| (i.node.clone(), metrics(&i.node))).collect();
            report.segmentation.insert(node.name.clone(), m);
        } else if let Some(p) = any.downcast_ref::<PriorEstimate>() {
            report.prior.insert(node.name.clone(), prior_report(p, test, train, read_train, &truth));
        }
    }
}

/// A `prior_estimate` node's fits of the PEM's (and the classifier's) prior to the truth.
fn prior_report(
    p: &PriorEstimate,
    test: &TestTallies,
    train: &TrainTallies,
    read_train: bool,
    truth: &[f64],
) -> PriorReport {
    let fit = |sums: &(Vec<f64>, u64)| {
        let mean: Vec<f64> = sums.0.iter().map(|s| s / sums.1.max(1) as f64).collect();
        prior_fit(&mean, truth)
    };
    let logits = p.logits.as_ref().filter(|_| read_train);
    PriorReport {
        train: train.pem_sums.get(&p.input.node).map(fit),
        train_posterior: logits.map(|l| prior_fit(&train.stats(&posterior(&p.input.node, &l.node)).mean(), truth)),
        train_predicted: logits.map(|l| {
            let minus_ln: Vec<f64> = ln(&train.stats(&predicted(&l.node)).share()).iter().map(|v| -v).collect();
            prior_fit(&minus_ln, truth)
        }),
        test: fit(&test.pem_sums[&p.input.node]),
    }
}
