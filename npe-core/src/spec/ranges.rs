//! Every range check on a pipeline's own settings (`name`, `train`, its optimiser, schedule and
//! checkpoints, `eval`, and the data section's loader, normalisation and long-tail settings), in
//! one place: what needs no graph and no data files. Each error is located at its key. Checks
//! that need the graph (frozen nodes, parameter groups' nodes, evaluators' needs) stay with the
//! IR build; those that need the data's class count, channels and sizes, with the data's
//! description (`data::describe`), which also runs [`data`].

use super::{Locator, PipelineSpec, ScheduleKind};
use crate::diag::{Diagnostic, Diagnostics};

/// Push an error for every setting of `spec` out of its range.
pub fn check(spec: &PipelineSpec, loc: &Locator, diags: &mut Diagnostics) {
    let mut err = |path: &str, msg: String, hint: Option<&str>| {
        diags.push(Diagnostic::error(loc.value(path), msg).with_opt_hint(hint.map(String::from)));
    };
    sizes(spec, &mut err);
    optimizer(&spec.train, &mut err);
    schedule(&spec.train, &mut err);
    cadences(spec, &mut err);
}

/// Most loader worker threads.
pub const MAX_WORKERS: usize = 256;
/// Most batches a loader may prepare ahead.
pub const MAX_PREFETCH: usize = 4096;

/// The data section's own ranges: the first error as `(spec path, message)`.
pub fn data(spec: &super::DataSpec) -> Result<(), (String, String)> {
    let l = &spec.loader;
    if l.workers > MAX_WORKERS || l.prefetch > MAX_PREFETCH {
        let (field, n, max) = if l.workers > MAX_WORKERS {
            ("workers", l.workers, MAX_WORKERS)
        } else {
            ("prefetch", l.prefetch, MAX_PREFETCH)
        };
        return Err((format!("data.loader.{field}"), format!("{n} is more than the {max} npe allows")));
    }
    if let Some(n) = &spec.normalize {
        if n.std.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
            return Err(("data.normalize.std".into(), "every std must be a finite number > 0".into()));
        }
        if n.mean.iter().any(|m| !m.is_finite()) {
            return Err(("data.normalize.mean".into(), "every mean must be a finite number".into()));
        }
    }
    let lt = &spec.long_tail;
    if !(lt.imbalance_factor >= 1.0 && lt.imbalance_factor.is_finite()) {
        return Err(("data.long_tail.imbalance_factor".into(), format!("must be ≥ 1, got {}", lt.imbalance_factor)));
    }
    if !(0.0..=1.0).contains(&lt.step_fraction) {
        return Err(("data.long_tail.step_fraction".into(), format!("must be in [0, 1], got {}", lt.step_fraction)));
    }
    Ok(())
}

/// How an error is pushed: the key's path, the message, a hint.
type Err<'a> = dyn FnMut(&str, String, Option<&str>) + 'a;

/// The run's name, epochs, batch size and threads.
fn sizes(spec: &PipelineSpec, err: &mut Err) {
    let t = &spec.train;
    // The name is the default output folder `runs/<name>`: a plain folder name only.
    let n = &spec.name;
    if n.starts_with('.') || !n.chars().all(|c| c.is_alphanumeric() || "_-.".contains(c)) {
        err(
            "name",
            format!("`name: {n}` must be a plain folder name (letters, digits, `_`, `-`, `.`; not starting with `.`)"),
            Some("it names the output folder runs/<name>; use --out for another place"),
        );
    }
    if t.epochs == 0 {
        err("train.epochs", "`epochs` must be at least 1".into(), None);
    }
    if t.batch_size == 0 {
        err("train.batch_size", "`batch_size` must be at least 1".into(), None);
    }
    if t.threads > 1024 {
        err(
            "train.threads",
            format!("`threads: {}` is more than the 1024 npe allows", t.threads),
            Some("0 uses every core"),
        );
    }
}

/// The optimiser's coefficients and its parameter groups' scales.
fn optimizer(t: &super::TrainSpec, err: &mut Err) {
    let o = &t.optimizer;
    if !(o.lr.is_finite() && o.lr > 0.0) {
        err("train.optimizer.lr", format!("`lr` must be > 0, got {}", o.lr), None);
    }
    if !(0.0..1.0).contains(&o.momentum) {
        err("train.optimizer.momentum", format!("`momentum` must be in [0, 1), got {}", o.momentum), None);
    }
    if !(0.0..=1.0).contains(&o.dampening) {
        err("train.optimizer.dampening", format!("`dampening` must be in [0, 1], got {}", o.dampening), None);
    }
    if o.nesterov && (o.momentum == 0.0 || o.dampening != 0.0) {
        err("train.optimizer.nesterov", "Nesterov momentum needs momentum > 0 and dampening 0".into(), None);
    }
    if !o.betas.iter().all(|b| (0.0..1.0).contains(b)) {
        err("train.optimizer.betas", format!("`betas` must be in [0, 1), got {:?}", o.betas), None);
    }
    if !(o.eps.is_finite() && o.eps > 0.0) {
        err("train.optimizer.eps", format!("`eps` must be > 0, got {}", o.eps), None);
    }
    if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
        err("train.optimizer.weight_decay", format!("`weight_decay` must be ≥ 0, got {}", o.weight_decay), None);
    }
    for (g, group) in t.optimizer.param_groups.iter().enumerate() {
        if !(group.lr_scale.is_finite() && group.lr_scale >= 0.0) {
            err(
                &format!("train.optimizer.param_groups.{g}.lr_scale"),
                format!("`lr_scale` must be a finite number ≥ 0, got {}", group.lr_scale),
                None,
            );
        }
    }
}

/// The learning-rate schedule against the epochs.
fn schedule(t: &super::TrainSpec, err: &mut Err) {
    let s = &t.schedule;
    match s.kind {
        ScheduleKind::Multistep if s.milestones.is_empty() => err(
            "train.schedule",
            "`multistep` needs `milestones` (epochs)".into(),
            Some("e.g. `milestones: [160, 180]`"),
        ),
        ScheduleKind::Multistep if s.milestones.windows(2).any(|w| w[0] >= w[1]) => {
            err("train.schedule.milestones", "`milestones` must increase".into(), None)
        }
        ScheduleKind::Constant | ScheduleKind::Cosine if !s.milestones.is_empty() => err(
            "train.schedule.milestones",
            "`milestones` only apply to `kind: multistep`".into(),
            Some("remove `milestones` or set `kind: multistep`"),
        ),
        _ => {}
    }
    if s.milestones.iter().any(|&m| m > t.epochs) {
        err("train.schedule.milestones", format!("a milestone is beyond the last epoch ({})", t.epochs), None);
    }
    if !(s.warmup_epochs >= 0.0 && s.warmup_epochs < t.epochs.max(1) as f64) {
        err(
            "train.schedule.warmup_epochs",
            format!("`warmup_epochs` must be in [0, epochs), got {}", s.warmup_epochs),
            None,
        );
    }
    if !(s.gamma > 0.0 && s.gamma.is_finite() && s.min_lr >= 0.0 && s.min_lr.is_finite()) {
        err("train.schedule", "`gamma` must be a finite number > 0 and `min_lr` a finite number ≥ 0".into(), None);
    }
}

/// Data-parallel timeout, steps per epoch, checkpoint and evaluation cadences.
fn cadences(spec: &PipelineSpec, err: &mut Err) {
    let t = &spec.train;
    if !(t.dist_timeout_s.is_finite() && t.dist_timeout_s >= 1.0) {
        err(
            "train.dist_timeout_s",
            format!("`dist_timeout_s` must be a number of seconds ≥ 1, got {}", t.dist_timeout_s),
            Some("it bounds how long ranks wait for each other before naming the one that stopped (default 60)"),
        );
    }
    if t.max_steps_per_epoch == Some(0) {
        err(
            "train.max_steps_per_epoch",
            "`max_steps_per_epoch` must be at least 1 (0 would train nothing)".into(),
            None,
        );
    }
    if t.checkpoint.keep_last == 0 {
        err(
            "train.checkpoint.keep_last",
            "`keep_last` must be at least 1 (the checkpoint to resume from)".into(),
            None,
        );
    }
    if t.checkpoint.every_epochs == 0 || spec.eval.every_epochs == 0 {
        err("train.checkpoint.every_epochs", "cadences (`every_epochs`) must be at least 1".into(), None);
    }
    if spec.eval.batch_size == 0 {
        err("eval.batch_size", "`batch_size` must be at least 1".into(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Overrides, load_source};

    #[test]
    fn each_setting_out_of_range_is_an_error_at_its_key() {
        let yaml = "name: r\ndata: {source: synthetic}\nnodes:\n  f: {kind: mlp, input: data}\n  l: {kind: linear, input: f}\n  ce: {kind: cross_entropy, input: l}\ntrain:\n  epochs: 3\n  optimizer: {lr: -1, momentum: 1.5}\n  schedule: {kind: multistep, milestones: [5]}\n  checkpoint: {keep_last: 0}\n";
        let loaded =
            load_source(crate::source::SourceText::from_string("t.yaml", yaml), &Overrides::default()).unwrap();
        let mut diags = Diagnostics::default();
        check(&loaded.spec, &loaded.locator, &mut diags);
        let said: Vec<String> = diags.errors().map(|d| d.to_string()).collect();
        for (key, what) in [
            ("lr", "`lr` must be > 0, got -1"),
            ("momentum", "`momentum` must be in [0, 1), got 1.5"),
            ("milestones", "beyond the last epoch (3)"),
            ("keep_last", "`keep_last` must be at least 1"),
        ] {
            assert!(said.iter().any(|s| s.contains(what) && s.contains("t.yaml:")), "{key}: {said:#?}");
        }
        assert_eq!(said.len(), 4, "{said:#?}");
    }

    #[test]
    fn the_data_sections_ranges_name_their_key() {
        let bad = |yaml: &str| data(&crate::spec::DataSpec::from_yaml(yaml).unwrap()).unwrap_err().0;
        assert_eq!(bad("{source: synthetic, loader: {workers: 1000}}"), "data.loader.workers");
        assert_eq!(bad("{source: synthetic, normalize: {mean: [0], std: [0]}}"), "data.normalize.std");
        assert_eq!(bad("{source: synthetic, long_tail: {imbalance_factor: 0.5}}"), "data.long_tail.imbalance_factor");
        assert!(data(&crate::spec::DataSpec::from_yaml("{source: synthetic}").unwrap()).is_ok());
    }
}
