//! Basic types every layer of the core shares: signatures, node references, parameter
//! declarations, the task and node categories. This module imports nothing else from the crate,
//! so the modules above it (spec, data, nodes, ir, exec, train) form no cycle.

mod node_ref;
mod param;
mod sig;

pub use node_ref::NodeRef;
pub use param::{Init, NamedTensor, ParamKind, ParamSpec};
pub use sig::{Role, Sig};

use serde::{Deserialize, Serialize};

/// A node's parameters as given in YAML (a figment value, usually a dict).
pub type Params = figment::value::Value;

/// What the pipeline predicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// One label per image.
    #[default]
    Classification,
    /// One label per pixel.
    Segmentation,
}

/// What family a kind belongs to (drives validation, rendering and execution).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Produces features from the input.
    Backbone,
    /// A classifier head producing logits.
    Head,
    /// Prior estimation modules.
    Pem,
    /// A training loss.
    Loss,
    /// Changes logits at inference (logit adjustment, resizing).
    Adjuster,
    /// Computes metrics on the test split (on the host).
    Evaluator,
}

impl Category {
    /// Lower-case name used in docs and graphs.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Backbone => "backbone",
            Category::Head => "head",
            Category::Pem => "pem",
            Category::Loss => "loss",
            Category::Adjuster => "adjuster",
            Category::Evaluator => "evaluator",
        }
    }

    /// Whether nodes of this family own parameters that training updates.
    pub fn has_parameters(self) -> bool {
        matches!(self, Category::Backbone | Category::Head | Category::Pem)
    }
}

/// One named input of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Port (the YAML field holding the reference).
    pub port: String,
    /// Referenced node (and output).
    pub source: NodeRef,
}

impl Input {
    /// The input on `port`.
    pub fn new(port: &str, source: &NodeRef) -> Self {
        Self { port: port.into(), source: source.clone() }
    }

    /// A list field of references: ports `field.0`, `field.1`, ...
    pub fn list(field: &str, sources: &[NodeRef]) -> Vec<Self> {
        sources.iter().enumerate().map(|(i, r)| Self { port: format!("{field}.{i}"), source: r.clone() }).collect()
    }
}

/// Facts about the pipeline that shape inference needs.
#[derive(Clone, Copy, Debug)]
pub struct InferCtx {
    /// Number of classes of the data.
    pub num_classes: usize,
    /// Classification or segmentation.
    pub task: Task,
    /// Size of the label maps (segmentation).
    pub label_size: Option<[usize; 2]>,
}
