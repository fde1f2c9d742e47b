//! The IR: a validated pipeline graph (petgraph DAG) with a typed op and an inferred signature
//! on every node, in execution order. Built by [`build`]; rendered by [`render`].

mod build;
pub mod render;
pub mod size;

pub use crate::types::{Role, Sig};
pub use build::{build, build_with_data};

use crate::data::DataSig;
use crate::diag::Origin;
use crate::kind::Node;
use crate::spec::{DataSpec, EvalSpec, TrainSpec};
use crate::types::{Category, Task};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a graph node is.
#[derive(Clone, Debug)]
pub enum NodeBody {
    /// The data source (outputs `image`, and labels consumed implicitly by losses/evaluators).
    Data,
    /// A computation.
    Op(Arc<dyn Node>),
}

/// A node of the IR.
#[derive(Clone, Debug)]
pub struct IrNode {
    /// Unique name.
    pub name: String,
    /// Data source or op.
    pub body: NodeBody,
    /// Output signature.
    pub sig: Sig,
    /// Where it is defined.
    pub origin: Origin,
}

impl IrNode {
    /// The op, unless this is the data node.
    pub fn op(&self) -> Option<&dyn Node> {
        match &self.body {
            NodeBody::Op(op) => Some(op.as_ref()),
            NodeBody::Data => None,
        }
    }

    /// Kind name (`data` for the data node).
    pub fn kind(&self) -> &str {
        self.op().map_or("data", |op| op.kind())
    }

    /// Category (None for the data node).
    pub fn category(&self) -> Option<Category> {
        self.op().map(|op| op.category())
    }
}

/// An edge: which input port of the target it feeds.
#[derive(Clone, Debug)]
pub struct IrEdge {
    /// Port name on the consuming node.
    pub port: String,
}

/// A validated pipeline.
#[derive(Clone, Debug)]
pub struct Ir {
    /// Pipeline name.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// Classification or segmentation.
    pub task: Task,
    /// The data section.
    pub data_spec: DataSpec,
    /// What the data produces.
    pub data: DataSig,
    /// The training section.
    pub train: TrainSpec,
    /// The evaluation section.
    pub eval: EvalSpec,
    /// The graph.
    pub graph: DiGraph<IrNode, IrEdge>,
    /// Nodes in execution (topological) order, data first.
    pub order: Vec<NodeIndex>,
    index: BTreeMap<String, NodeIndex>,
}

impl Ir {
    /// Node by name.
    pub fn node(&self, name: &str) -> Option<&IrNode> {
        self.index.get(name).map(|&i| &self.graph[i])
    }

    /// Index by name.
    pub fn index_of(&self, name: &str) -> Option<NodeIndex> {
        self.index.get(name).copied()
    }

    /// Nodes in execution order (data node first).
    pub fn nodes(&self) -> impl Iterator<Item = &IrNode> {
        self.order.iter().map(|&i| &self.graph[i])
    }

    /// Op nodes in execution order.
    pub fn ops(&self) -> impl Iterator<Item = (&IrNode, &dyn Node)> {
        self.nodes().filter_map(|n| n.op().map(|op| (n, op)))
    }

    /// Op nodes of one category, in execution order.
    pub fn ops_of(&self, cat: Category) -> impl Iterator<Item = (&IrNode, &dyn Node)> {
        self.ops().filter(move |(_, op)| op.category() == cat)
    }

    /// The nodes feeding `name`, in port order.
    pub fn inputs_of(&self, name: &str) -> Vec<&IrNode> {
        let Some(&i) = self.index.get(name) else {
            return vec![];
        };
        let Some(op) = self.graph[i].op() else {
            return vec![];
        };
        op.inputs().iter().filter_map(|inp| self.node(&inp.source.node)).collect()
    }

    /// Names of nodes that consume `name`'s output.
    pub fn consumers_of(&self, name: &str) -> Vec<&str> {
        let Some(&i) = self.index.get(name) else {
            return vec![];
        };
        self.graph.edges(i).map(|e| self.graph[e.target()].name.as_str()).collect()
    }

    /// Every node `name` depends on, transitively (not including itself).
    pub fn ancestors(&self, name: &str) -> Vec<&str> {
        let Some(&start) = self.index.get(name) else {
            return vec![];
        };
        let mut seen = vec![false; self.graph.node_count()];
        let mut stack = vec![start];
        let mut out = vec![];
        while let Some(i) = stack.pop() {
            for e in self.graph.edges_directed(i, petgraph::Direction::Incoming) {
                let s = e.source();
                if !seen[s.index()] {
                    seen[s.index()] = true;
                    out.push(self.graph[s].name.as_str());
                    stack.push(s);
                }
            }
        }
        out
    }

    /// Nodes whose parameters are of type `N`, in execution order (evaluators read by the host).
    pub fn nodes_of<N: 'static>(&self) -> impl Iterator<Item = (&IrNode, &N)> {
        self.ops().filter_map(|(n, op)| op.as_any().downcast_ref::<N>().map(|p| (n, p)))
    }

    /// Whether activations are channels-last: `train.channels_last` when set, else what every
    /// backbone prefers at `train.precision` ([`crate::kind::NodeDef::prefers_channels_last`];
    /// a pipeline without a backbone stays plain).
    pub fn channels_last(&self) -> bool {
        self.train.channels_last.unwrap_or_else(|| {
            let mut backbones = self.ops().filter(|(_, op)| op.category() == Category::Backbone).peekable();
            backbones.peek().is_some() && backbones.all(|(_, op)| op.prefers_channels_last(self.train.precision))
        })
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.data.num_classes
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::Registry;
    use crate::spec::{Overrides, load_source};

    fn channels_last(backbone: &str, train: &str) -> bool {
        let yaml = format!(
            "name: r\ndata: {{source: synthetic}}\nnodes:\n  f: {backbone}\n  l: {{kind: linear, input: f}}\n  ce: {{kind: cross_entropy, input: l}}\ntrain: {{{train}}}\n"
        );
        let loaded =
            load_source(crate::source::SourceText::from_string("t.yaml", yaml), &Overrides::default()).unwrap();
        crate::ir::build(&loaded, &Registry::builtin()).unwrap().0.channels_last()
    }

    #[test]
    fn the_layout_default_is_the_backbones_measured_choice_and_the_pipeline_overrides_it() {
        let resnet = "{kind: resnet_cifar, input: data, depth: 20}";
        let cnn = "{kind: small_cnn, input: data, channels: [8, 16]}";
        assert!(channels_last(resnet, ""), "ResNet in fp32: channels-last (1.38×)");
        assert!(channels_last(resnet, "precision: bf16"), "ResNet in bf16: channels-last (1.07×)");
        assert!(!channels_last(resnet, "precision: fp16"), "ResNet in fp16: not measured, plain");
        assert!(!channels_last(resnet, "channels_last: false"));
        assert!(!channels_last(cnn, ""), "small CNN: plain (0.78×)");
        // A U-Net's dense output needs a segmentation pipeline: asked of the kind directly.
        use crate::kind::NodeDef;
        use crate::tensor::Precision;
        let unet: crate::nodes::unet::UNet = serde_yaml::from_str("{input: data, channels: [8, 16]}").unwrap();
        assert!(
            unet.prefers_channels_last(Precision::Fp32) && unet.prefers_channels_last(Precision::Bf16),
            "U-Net: channels-last (1.27×, 1.18×)"
        );
        assert!(channels_last(cnn, "channels_last: true"));
        assert!(!channels_last("{kind: mlp, input: data, hidden: [8]}", ""), "no convolutions");
    }
}
