//! Evaluation: run the executor over the test split (and a training subset for the prior
//! estimate) and compute every evaluator's metrics on the host.

use super::TrainError;
use super::metrics::{Confusion, prior_fit};
use super::report::{EvalReport, PriorReport};
use crate::backend::{Executor, HostTensor, Request};
use crate::data::{Dataset, Loader};
use crate::ir::Ir;
use crate::nodes::{Accuracy, GroupsSpec, Iou, PriorEstimate};
use std::collections::BTreeMap;

/// What to ask the executor for, and where each answer goes.
struct Plan {
    requests: Vec<Request>,
}

impl Plan {
    fn new(ir: &Ir) -> Self {
        let mut requests: Vec<Request> = vec![];
        let mut add = |r: Request| {
            if !requests.contains(&r) {
                requests.push(r);
            }
        };
        for (_, op) in ir.ops() {
            let any = op.as_any();
            if let Some(a) = any.downcast_ref::<Accuracy>() {
                a.inputs.iter().for_each(|i| add(Request::Argmax(i.node.clone())));
            } else if let Some(a) = any.downcast_ref::<Iou>() {
                a.inputs.iter().for_each(|i| add(Request::Argmax(i.node.clone())));
            } else if let Some(p) = any.downcast_ref::<PriorEstimate>() {
                add(Request::SpatialMean(p.input.node.clone()));
            }
        }
        Self { requests }
    }
}

/// Class groups (0 head, 1 medium, 2 tail) of `groups` given training counts.
pub fn class_groups(groups: &GroupsSpec, counts: &[u64]) -> Vec<usize> {
    let c: Vec<usize> = counts.iter().map(|&n| n as usize).collect();
    groups.assign(&c)
}

/// Accumulate `h̄` per class from a `[M, N, C]` tensor.
fn add_pem(sum: &mut [f64], count: &mut u64, t: &HostTensor) {
    let (m, n, c) = (t.shape[0], t.shape[1], t.shape[2]);
    for mi in 0..m {
        for ni in 0..n {
            for k in 0..c {
                sum[k] += t.data[(mi * n + ni) * c + k] as f64 / m as f64;
            }
        }
    }
    *count += n as u64;
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
    if plan.requests.is_empty() {
        return Ok(report);
    }
    let mut confusion: BTreeMap<String, Confusion> = BTreeMap::new();
    let mut pem_sums: BTreeMap<String, (Vec<f64>, u64)> = BTreeMap::new();
    for batch in test.iter(0, 0) {
        let batch = batch?;
        let out = exec.infer(&batch, &plan.requests)?;
        for (r, t) in plan.requests.iter().zip(&out) {
            match r {
                Request::Argmax(node) => {
                    confusion.entry(node.clone()).or_insert_with(|| Confusion::new(classes)).add(&t.data, &batch.labels)
                }
                Request::SpatialMean(node) => {
                    let e = pem_sums.entry(node.clone()).or_insert_with(|| (vec![0.0; classes], 0));
                    add_pem(&mut e.0, &mut e.1, t);
                }
                Request::Output(_) => {}
            }
        }
        report.test_images += batch.len();
    }
    // Training-split mean of the PEMs: the estimate of the training prior.
    let mut train_sums: BTreeMap<String, (Vec<f64>, u64)> = BTreeMap::new();
    let pem_requests: Vec<Request> =
        plan.requests.iter().filter(|r| matches!(r, Request::SpatialMean(_))).cloned().collect();
    if let (Some(loader), false) = (prior_train, pem_requests.is_empty()) {
        for batch in loader.iter(0, 0) {
            let batch = batch?;
            let out = exec.infer(&batch, &pem_requests)?;
            for (r, t) in pem_requests.iter().zip(&out) {
                if let Request::SpatialMean(node) = r {
                    let e = train_sums.entry(node.clone()).or_insert_with(|| (vec![0.0; classes], 0));
                    add_pem(&mut e.0, &mut e.1, t);
                }
            }
        }
    }
    let truth = ds.train_prior();
    for (node, op) in ir.ops() {
        let any = op.as_any();
        if let Some(a) = any.downcast_ref::<Accuracy>() {
            let groups = class_groups(&a.groups, &ds.train_counts);
            let m = a.inputs.iter().map(|i| (i.node.clone(), confusion[&i.node].accuracy(&groups))).collect();
            report.accuracy.insert(node.name.clone(), m);
        } else if let Some(a) = any.downcast_ref::<Iou>() {
            let tail: Vec<bool> = truth.iter().map(|&p| p < a.tail.pixel_fraction_below).collect();
            let m = a.inputs.iter().map(|i| (i.node.clone(), confusion[&i.node].segmentation(&tail))).collect();
            report.segmentation.insert(node.name.clone(), m);
        } else if let Some(p) = any.downcast_ref::<PriorEstimate>() {
            let fit = |sums: &(Vec<f64>, u64)| {
                let mean: Vec<f64> = sums.0.iter().map(|s| s / sums.1.max(1) as f64).collect();
                prior_fit(&mean, &truth)
            };
            let test_fit = fit(&pem_sums[&p.input.node]);
            let train_fit = train_sums.get(&p.input.node).map(fit);
            report.prior.insert(node.name.clone(), PriorReport { train: train_fit, test: test_fit });
        }
    }
    Ok(report)
}
