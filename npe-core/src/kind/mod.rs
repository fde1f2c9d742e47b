//! What a node kind is: [`NodeDef`], one impl per kind (built-in or a user's), holding its YAML
//! parameters, validation, shape inference, parameter declaration and forward pass. The core
//! erases it to [`Node`] (in the IR) and [`Module`] (in the lowered plan).

use crate::error::Result;
pub mod calibrate;
mod checks;
mod cx;
mod declare;
mod value;

pub use checks::{
    check_classes, check_label_size, check_task_shape, expect_logits_each, expect_role, finite, image_spatial,
};
pub use cx::{Calibration, Cx, Targets};
pub use declare::{Declare, ParamId};
pub use value::{Value, first};

use crate::backend::ExecError;
use crate::types::{Category, InferCtx, Input, NodeRef, Params, Sig};
use serde::de::DeserializeOwned;
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

/// How a node changes logits with the class prior (checked against double adjustment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adjust<'a> {
    /// A training loss that adds the counts' log-prior to these logits (LA loss).
    TrainsWithCounts(&'a NodeRef),
    /// An inference-time adjustment of these logits (NPE-LA, post-hoc LA).
    AtInference(&'a NodeRef),
}

/// One node kind, defined once. Implement it for the kind's YAML parameter struct (serde,
/// `deny_unknown_fields`); register built-ins by adding a file under `nodes/`, user kinds with
/// [`crate::Registry::register`].
pub trait NodeDef: Clone + Debug + DeserializeOwned + Send + Sync + 'static {
    /// The YAML `kind`.
    const KIND: &'static str;
    /// Its family.
    const CATEGORY: Category;
    /// One line for `npe kinds` and hints.
    const SUMMARY: &'static str;
    /// What lowering produces for the forward pass: parameter handles and sizes fixed by the
    /// inferred shapes (`()` for kinds without parameters).
    type Lowered: Send + Sync + 'static;

    /// Checks of the parameters alone, when the node is parsed.
    fn check(&self) -> Result<()> {
        Ok(())
    }
    /// The node's inputs, in port order.
    fn inputs(&self) -> Vec<Input>;
    /// The output signature from the inputs' (same order as [`inputs`](Self::inputs)); the
    /// error says what is wrong in the user's terms.
    fn infer(&self, inputs: &[Sig], cx: &InferCtx) -> Result<Sig>;
    /// Declare the parameters (the handles the forward pass uses) for these signatures.
    fn lower(&self, d: &mut Declare, inputs: &[Sig], out: &Sig) -> Self::Lowered;
    /// The forward pass (evaluators, computed on the host, keep the default).
    fn forward(&self, _lowered: &Self::Lowered, _cx: &mut Cx, _inputs: Vec<Value>) -> Result<Value, ExecError> {
        Err(ExecError::Internal(format!("`{}` nodes are evaluated on the host, not run", Self::KIND)))
    }
    /// How this node adjusts logits with the class prior, if it does.
    fn adjusts(&self) -> Option<Adjust<'_>> {
        None
    }
    /// Whether this backbone trains faster with channels-last activations at `precision` on
    /// libtorch: the default of `train.channels_last`, measured per kind
    /// (`results/bench_speed.md`). Default false.
    fn prefers_channels_last(&self, _precision: crate::tensor::Precision) -> bool {
        false
    }
}

/// A parsed node in the IR (a [`NodeDef`] with its type erased).
pub trait Node: Debug + Send + Sync {
    /// The YAML `kind`.
    fn kind(&self) -> &'static str;
    /// Its family.
    fn category(&self) -> Category;
    /// Inputs in port order.
    fn inputs(&self) -> Vec<Input>;
    /// Output signature.
    fn infer(&self, inputs: &[Sig], cx: &InferCtx) -> Result<Sig>;
    /// Declare parameters and return the runnable module.
    fn lower(&self, d: &mut Declare, inputs: &[Sig], out: &Sig) -> Box<dyn Module>;
    /// Prior adjustment, for the double-adjustment check.
    fn adjusts(&self) -> Option<Adjust<'_>>;
    /// See [`NodeDef::prefers_channels_last`].
    fn prefers_channels_last(&self, precision: crate::tensor::Precision) -> bool;
    /// The concrete parameters (evaluators are read by the host-side metrics).
    fn as_any(&self) -> &dyn Any;
}

/// A lowered node: runs on any backend's [`crate::tensor::Ops`].
pub trait Module: Send + Sync {
    /// The forward pass.
    fn forward(&self, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError>;
}

struct Lowered<N: NodeDef> {
    node: N,
    state: N::Lowered,
}

impl<N: NodeDef> Module for Lowered<N> {
    fn forward(&self, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        self.node.forward(&self.state, cx, inputs)
    }
}

impl<N: NodeDef> Node for N {
    fn kind(&self) -> &'static str {
        N::KIND
    }
    fn category(&self) -> Category {
        N::CATEGORY
    }
    fn inputs(&self) -> Vec<Input> {
        NodeDef::inputs(self)
    }
    fn infer(&self, inputs: &[Sig], cx: &InferCtx) -> Result<Sig> {
        NodeDef::infer(self, inputs, cx)
    }
    fn lower(&self, d: &mut Declare, inputs: &[Sig], out: &Sig) -> Box<dyn Module> {
        let state = NodeDef::lower(self, d, inputs, out);
        Box::new(Lowered { node: self.clone(), state })
    }
    fn adjusts(&self) -> Option<Adjust<'_>> {
        NodeDef::adjusts(self)
    }
    fn prefers_channels_last(&self, precision: crate::tensor::Precision) -> bool {
        NodeDef::prefers_channels_last(self, precision)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Why a node could not be parsed.
#[derive(Debug)]
pub enum ParseError {
    /// No such kind.
    UnknownKind,
    /// A field is missing, unknown or of the wrong type.
    Serde(figment::Error),
    /// The kind rejected its parameters ([`NodeDef::check`]).
    Custom(crate::error::Error),
}

/// A registered kind: what the registry, `npe kinds` and the IR know of it.
#[derive(Clone)]
pub struct KindInfo {
    /// YAML name.
    pub name: String,
    /// Family.
    pub category: Category,
    /// One-line description.
    pub summary: String,
    parse: fn(&Params) -> Result<Arc<dyn Node>, ParseError>,
}

impl KindInfo {
    /// The entry of kind `N`.
    pub fn of<N: NodeDef>() -> Self {
        Self { name: N::KIND.into(), category: N::CATEGORY, summary: N::SUMMARY.into(), parse: parse_node::<N> }
    }

    /// Parse a node's fields (without `kind`).
    pub fn parse(&self, params: &Params) -> Result<Arc<dyn Node>, ParseError> {
        (self.parse)(params)
    }
}

fn parse_node<N: NodeDef>(params: &Params) -> Result<Arc<dyn Node>, ParseError> {
    let node: N = params.deserialize().map_err(ParseError::Serde)?;
    node.check().map_err(ParseError::Custom)?;
    Ok(Arc::new(node))
}

/// Serde default helpers shared by node definitions.
pub mod defaults {
    /// 1.0
    pub fn one() -> f64 {
        1.0
    }
    /// true
    pub fn yes() -> bool {
        true
    }
    /// 1
    pub fn one_usize() -> usize {
        1
    }
}
