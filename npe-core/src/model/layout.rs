//! Parameter layouts of the built-in node kinds (and of custom backbones, through the registry).

use super::{Init, ParamKind, ParamSpec};
use crate::ir::{Ir, Sig};
use crate::nodes::Op;
use crate::registry::Registry;

struct B<'a> {
    node: &'a str,
    decay: bool,
    out: Vec<ParamSpec>,
}

impl B<'_> {
    fn push(&mut self, local: &str, shape: Vec<usize>, init: Init, kind: ParamKind) {
        self.out.push(ParamSpec {
            name: format!("{}.{local}", self.node),
            node: self.node.to_string(),
            shape,
            init,
            kind,
            decay: self.decay && kind == ParamKind::Weight,
        });
    }
    /// PyTorch's default Linear/Conv init: U(±1/√fan_in) for weight and bias.
    fn torch_default(fan_in: usize) -> Init {
        Init::Uniform { bound: 1.0 / (fan_in.max(1) as f64).sqrt() }
    }
    fn linear(&mut self, local: &str, out: usize, inp: usize, bias: bool) {
        self.push(&format!("{local}weight"), vec![out, inp], Self::torch_default(inp), ParamKind::Weight);
        if bias {
            self.push(&format!("{local}bias"), vec![out], Self::torch_default(inp), ParamKind::Weight);
        }
    }
    fn conv(&mut self, local: &str, out: usize, inp: usize, k: usize, init: Init, bias: Option<Init>) {
        self.push(&format!("{local}weight"), vec![out, inp, k, k], init, ParamKind::Weight);
        if let Some(b) = bias {
            self.push(&format!("{local}bias"), vec![out], b, ParamKind::Weight);
        }
    }
    fn bn(&mut self, local: &str, c: usize) {
        self.push(&format!("{local}weight"), vec![c], Init::Ones, ParamKind::Weight);
        self.push(&format!("{local}bias"), vec![c], Init::Zeros, ParamKind::Weight);
        self.push(&format!("{local}running_mean"), vec![c], Init::Zeros, ParamKind::Buffer);
        self.push(&format!("{local}running_var"), vec![c], Init::Ones, ParamKind::Buffer);
    }
    fn kaiming(fan_in: usize) -> Init {
        Init::KaimingNormal { fan_in }
    }
    /// The CIFAR ResNet trunk (conv1/bn1 and three stages); returns output channels.
    fn resnet_trunk(&mut self, in_ch: usize, width: usize, blocks: usize) -> usize {
        self.conv("conv1.", width, in_ch, 3, Self::kaiming(in_ch * 9), None);
        self.bn("bn1.", width);
        let mut cin = width;
        for (s, planes) in [width, 2 * width, 4 * width].into_iter().enumerate() {
            for b in 0..blocks {
                let p = format!("layer{}.{b}.", s + 1);
                self.conv(&format!("{p}conv1."), planes, cin, 3, Self::kaiming(cin * 9), None);
                self.bn(&format!("{p}bn1."), planes);
                self.conv(&format!("{p}conv2."), planes, planes, 3, Self::kaiming(planes * 9), None);
                self.bn(&format!("{p}bn2."), planes);
                cin = planes;
            }
        }
        cin
    }
}

/// Parameters of one node given its input signatures (empty for parameter-free kinds).
pub fn node_layout(name: &str, op: &Op, inputs: &[Sig], out: &Sig, registry: &Registry) -> Vec<ParamSpec> {
    let mut b = B { node: name, decay: true, out: vec![] };
    match op {
        Op::Mlp(p) => {
            let mut d = inputs[0].numel();
            for (i, &h) in p.hidden.iter().enumerate() {
                b.linear(&format!("layers.{i}."), h, d, true);
                if p.batch_norm {
                    b.bn(&format!("norms.{i}."), h);
                }
                d = h;
            }
        }
        Op::ResNetCifar(p) => {
            b.resnet_trunk(inputs[0].channels, p.width, p.blocks_per_stage());
        }
        Op::SmallCnn(p) => {
            let mut cin = inputs[0].channels;
            for (i, &c) in p.channels.iter().enumerate() {
                let fan = cin * 9;
                b.conv(&format!("convs.{i}."), c, cin, 3, B::torch_default(fan), Some(B::torch_default(fan)));
                b.bn(&format!("norms.{i}."), c);
                cin = c;
            }
        }
        Op::UNet(p) => {
            let ch = &p.channels;
            let mut cin = inputs[0].channels;
            for (l, &c) in ch.iter().enumerate() {
                for j in 1..=2 {
                    let i = if j == 1 { cin } else { c };
                    b.conv(&format!("down.{l}.conv{j}."), c, i, 3, B::kaiming(i * 9), None);
                    b.bn(&format!("down.{l}.bn{j}."), c);
                }
                cin = c;
            }
            for l in (0..ch.len() - 1).rev() {
                let (c, below) = (ch[l], ch[l + 1]);
                for j in 1..=2 {
                    let i = if j == 1 { c + below } else { c };
                    b.conv(&format!("up.{l}.conv{j}."), c, i, 3, B::kaiming(i * 9), None);
                    b.bn(&format!("up.{l}.bn{j}."), c);
                }
            }
        }
        Op::FcnResNet(p) => {
            let c = b.resnet_trunk(inputs[0].channels, p.width, (p.depth - 2) / 6);
            b.conv("head.conv.", p.head_channels, c, 3, B::kaiming(c * 9), None);
            b.bn("head.bn.", p.head_channels);
        }
        Op::Custom(p) => {
            if let Some(c) = registry.custom(&p.kind) {
                for mut s in c.parameters(&p.params, &inputs[0]) {
                    s.name = format!("{name}.{}", s.name);
                    s.node = name.to_string();
                    b.out.push(s);
                }
            }
        }
        Op::Linear(p) => {
            let d = inputs[0].channels;
            if inputs[0].is_map() {
                b.conv("", out.channels, d, 1, B::torch_default(d), p.bias.then(|| B::torch_default(d)));
            } else {
                b.linear("", out.channels, d, p.bias);
            }
        }
        Op::Pem(p) => {
            b.decay = p.weight_decay;
            let map = inputs[0].is_map();
            let c = out.channels;
            for m in 0..p.count {
                let mut d = inputs[0].channels;
                let last_prefix = if p.hidden.is_empty() { format!("{m}.") } else { format!("{m}.out.") };
                for (j, &h) in p.hidden.iter().enumerate() {
                    if map {
                        let fan = d * p.kernel_size * p.kernel_size;
                        b.conv(
                            &format!("{m}.hidden.{j}."),
                            h,
                            d,
                            p.kernel_size,
                            B::torch_default(fan),
                            Some(B::torch_default(fan)),
                        );
                    } else {
                        b.linear(&format!("{m}.hidden.{j}."), h, d, true);
                    }
                    d = h;
                }
                let std = Init::Normal { std: p.init_std };
                if map {
                    let k = if p.hidden.is_empty() { p.kernel_size } else { 1 };
                    b.conv(&last_prefix, c, d, k, std, Some(Init::Zeros));
                } else {
                    b.push(&format!("{last_prefix}weight"), vec![c, d], std, ParamKind::Weight);
                    b.push(&format!("{last_prefix}bias"), vec![c], Init::Zeros, ParamKind::Weight);
                }
            }
        }
        _ => {}
    }
    b.out
}

/// Parameters of every node of `ir`, in execution order.
pub fn layout(ir: &Ir, registry: &Registry) -> Vec<ParamSpec> {
    let mut all = vec![];
    for (node, op) in ir.ops() {
        let inputs: Vec<Sig> = ir.inputs_of(&node.name).iter().map(|n| n.sig).collect();
        all.extend(node_layout(&node.name, op, &inputs, &node.sig, registry));
    }
    all
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
        let vals = super::super::initial_values(&specs, 0);
        let w = &vals.iter().find(|v| v.name == "p.0.weight").unwrap().data;
        let std = (w.iter().map(|x| (x * x) as f64).sum::<f64>() / w.len() as f64).sqrt();
        assert!(std > 0.0003 && std < 0.002, "std {std}");
    }
}
