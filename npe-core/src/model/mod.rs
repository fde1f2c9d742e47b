//! The model's parameters, declared by the core: names (PyTorch-style, prefixed by the node),
//! shapes, initialisation and weight-decay policy. Backends allocate exactly these, so both
//! backends start from identical values under a seed and export the same safetensors names.

mod initial;

pub use crate::types::{Init, NamedTensor, ParamKind, ParamSpec};
pub use initial::initial_values;

use crate::backend::{BuildContext, Device};
use crate::exec::Plan;
use crate::ir::Ir;
use crate::registry::Registry;

/// Parameters of every node of `ir`, in execution order (what the lowered plan declares).
pub fn layout(ir: &Ir, _registry: &Registry) -> Vec<ParamSpec> {
    Plan::lower(ir).specs
}

/// What building `ir`'s executor on `device` takes, the one way training, prediction and the
/// benchmarks build it: the plan's parameters with their initial values under `ir.seed`,
/// `train`'s threads, optimiser and frozen nodes, the data's ignore index, and `class_prior`
/// (the training prior: from counts where they are known, uniform where not).
pub fn build_context(ir: &Ir, registry: &Registry, device: Device, class_prior: Vec<f64>) -> BuildContext {
    let params = layout(ir, registry);
    BuildContext {
        device,
        threads: ir.train.threads,
        initial: initial_values(&params, ir.seed),
        params,
        optimizer: ir.train.optimizer.clone(),
        frozen: ir.train.freeze.iter().cloned().collect(),
        class_prior,
        ignore_index: ir.data_spec.ignore_index as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Overrides, load_source};

    fn ir(yaml: &str) -> Ir {
        let loaded =
            load_source(crate::source::SourceText::from_string("t.yaml", yaml), &Overrides::default()).unwrap();
        crate::ir::build(&loaded, &Registry::builtin()).unwrap().0
    }

    #[test]
    fn resnet32_has_the_pytorch_parameter_count() {
        let ir = ir(
            "name: r\ndata: {source: cifar10}\nnodes:\n  f: {kind: resnet_cifar, input: data, depth: 32}\n  l: {kind: linear, input: f}\n  ce: {kind: cross_entropy, input: l}\n",
        );
        let specs = layout(&ir, &Registry::builtin());
        let weights: usize = specs.iter().filter(|s| s.kind == ParamKind::Weight).map(|s| s.numel()).sum();
        // torchvision-style count for CIFAR ResNet-32 with a 10-way head: 464,154.
        assert_eq!(weights, 464_154);
        assert!(specs.iter().any(|s| s.name == "f.layer3.4.bn2.running_var" && s.kind == ParamKind::Buffer));
        assert_eq!(specs.iter().find(|s| s.name == "l.weight").unwrap().shape, vec![10, 64]);
    }

    #[test]
    fn pem_layout_init_and_decay() {
        let ir = ir(
            "name: p\ndata: {source: synthetic}\nnodes:\n  f: {kind: mlp, input: data, hidden: [8]}\n  p: {kind: pem, input: f, count: 2}\n  q: {kind: pem, input: f, hidden: [4], weight_decay: true}\n  pl: {kind: one_way_logistic, input: p}\n  ql: {kind: one_way_logistic, input: q}\n",
        );
        let specs = layout(&ir, &Registry::builtin());
        let get = |n: &str| specs.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("{n} missing"));
        assert_eq!(get("p.1.weight").shape, vec![10, 8]);
        assert_eq!(get("p.0.weight").init, Init::Normal { std: 0.001 });
        assert_eq!(get("p.0.bias").init, Init::Zeros);
        assert!(!get("p.0.weight").decay);
        assert!(get("q.0.out.weight").decay && get("q.0.hidden.0.weight").shape == vec![4, 8]);
        let vals = super::initial_values(&specs, 0);
        let w = &vals.iter().find(|v| v.name == "p.0.weight").unwrap().data;
        let std = (w.iter().map(|x| (x * x) as f64).sum::<f64>() / w.len() as f64).sqrt();
        assert!(std > 0.0003 && std < 0.002, "std {std}");
    }
}

#[cfg(test)]
mod torchvision_tests {
    use super::*;
    use crate::spec::{Overrides, load_source};

    fn weights(arch: &str) -> (usize, Vec<ParamSpec>) {
        let yaml = format!(
            "name: r\ndata: {{source: synthetic, synthetic: {{size: 64, channels: 3}}}}\nnodes:\n  features: {{kind: resnet, input: data, arch: {arch}}}\n  l: {{kind: linear, input: features}}\n  ce: {{kind: cross_entropy, input: l}}\n"
        );
        let loaded =
            load_source(crate::source::SourceText::from_string("t.yaml", yaml), &Overrides::default()).unwrap();
        let ir = crate::ir::build(&loaded, &Registry::builtin()).unwrap().0;
        let specs: Vec<ParamSpec> =
            layout(&ir, &Registry::builtin()).into_iter().filter(|s| s.node == "features").collect();
        (specs.iter().filter(|s| s.kind == ParamKind::Weight).map(|s| s.numel()).sum(), specs)
    }

    /// torchvision's totals minus the 1000-way `fc` (2048 · 1000 + 1000 = 2,049,000).
    #[test]
    fn torchvision_parameter_counts_and_names() {
        for (arch, total) in [("resnet50", 25_557_032), ("resnext50_32x4d", 25_028_904), ("resnet152", 60_192_808)] {
            let (n, specs) = weights(arch);
            assert_eq!(n, total - 2_049_000, "{arch}");
            let get = |name: &str| specs.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{arch}: no {name}"));
            assert_eq!(get("features.conv1.weight").shape, vec![64, 3, 7, 7]);
            assert_eq!(get("features.layer1.0.downsample.0.weight").shape, vec![256, 64, 1, 1]);
            assert!(specs.iter().any(|s| s.name == "features.layer4.2.bn3.running_var"));
        }
        let (_, specs) = weights("resnext50_32x4d");
        let conv2 = specs.iter().find(|s| s.name == "features.layer1.0.conv2.weight").unwrap();
        assert_eq!(conv2.shape, vec![128, 4, 3, 3], "32 groups of width 4");
    }
}
