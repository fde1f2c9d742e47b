//! The registry of node kinds: the built-ins, plus backbone kinds that user crates add.
//!
//! A user crate adds a backbone without forking npe in two halves: a [`CustomBackbone`] here
//! (its name, documentation and output shape, which is all validation needs) and, in the
//! backend it runs on, the code that builds and runs it (e.g. `npe_backend_burn::CustomBackboneImpl`).
//! See `examples/custom_backbone.rs`.

use crate::ir::Sig;
use crate::nodes::{Category, CustomBackboneParams, NodeRef, Op, Params};
use figment::value::{Dict, Value};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A backbone kind defined outside npe. It describes the node to the core; each backend that
/// should run it also needs the matching implementation registered with that backend.
pub trait CustomBackbone: Send + Sync {
    /// The YAML `kind` (must not clash with a built-in kind).
    fn kind(&self) -> &str;
    /// One line for `npe kinds` and error hints.
    fn summary(&self) -> &str;
    /// Check the parameters (everything but `kind` and `input`); return a message on error.
    fn validate(&self, params: &Params) -> Result<(), String>;
    /// Output signature (role is set to features by the caller) for an input signature.
    fn output(&self, params: &Params, input: &Sig) -> Result<Sig, String>;
    /// The node's parameters (names local to the node, e.g. `conv.weight`): every backend
    /// allocates and initialises exactly these, and exports them under `node.name`.
    fn parameters(&self, params: &Params, input: &Sig) -> Vec<crate::model::ParamSpec>;
}

/// Deserialize a node's parameters into the user's own type (for [`CustomBackbone`] impls).
pub fn parse_params<T: DeserializeOwned>(params: &Params) -> Result<T, String> {
    params.deserialize::<T>().map_err(|e| e.to_string())
}

/// How a kind is parsed.
#[derive(Clone)]
enum Parser {
    Builtin(fn(&Params) -> Result<Op, figment::Error>),
    Custom(Arc<dyn CustomBackbone>),
}

/// A registered kind.
#[derive(Clone)]
pub struct KindInfo {
    /// YAML name.
    pub name: String,
    /// Family.
    pub category: Category,
    /// One-line description.
    pub summary: String,
    parser: Parser,
}

/// All node kinds a pipeline may use.
#[derive(Clone)]
pub struct Registry {
    kinds: BTreeMap<String, KindInfo>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

macro_rules! builtin {
    ($map:ident, $name:literal, $cat:ident, $variant:ident, $summary:literal) => {
        $map.insert(
            $name.to_string(),
            KindInfo {
                name: $name.to_string(),
                category: Category::$cat,
                summary: $summary.to_string(),
                parser: Parser::Builtin(|p| p.deserialize().map(Op::$variant)),
            },
        );
    };
}

impl Registry {
    /// The built-in kinds.
    pub fn builtin() -> Self {
        let mut m = BTreeMap::new();
        builtin!(m, "mlp", Backbone, Mlp, "fully connected layers with ReLU on the flattened input");
        builtin!(
            m,
            "resnet_cifar",
            Backbone,
            ResNetCifar,
            "CIFAR ResNet-20/32/44/56/110, option-A shortcuts, global pooling"
        );
        builtin!(m, "small_cnn", Backbone, SmallCnn, "conv3×3-BN-ReLU stages with max-pooling, global pooling");
        builtin!(m, "unet", Backbone, UNet, "small U-Net, dense features at input resolution");
        builtin!(m, "fcn_resnet", Backbone, FcnResNet, "ResNet encoder (stride 4) with an FCN head, dense features");
        builtin!(m, "linear", Head, Linear, "linear classifier g(z) (1×1 conv on maps)");
        builtin!(m, "pem", Pem, Pem, "M prior estimation modules h_m(z), init N(0, 0.001²)");
        builtin!(m, "cross_entropy", Loss, CrossEntropy, "softmax cross-entropy on raw logits");
        builtin!(m, "logit_adjusted_ce", Loss, LogitAdjustedCe, "CE on logits + tau·log(prior from counts)");
        builtin!(m, "one_way_logistic", Loss, OneWayLogistic, "softplus of the true-class PEM output");
        builtin!(m, "npe_la", Adjuster, NpeLa, "logits + centred mean PEM output / s (no counts needed)");
        builtin!(m, "posthoc_la", Adjuster, PosthocLa, "logits − tau·log(prior from counts)");
        builtin!(m, "resize", Adjuster, Resize, "bilinear resize of a dense map (to the label size)");
        builtin!(m, "accuracy", Evaluator, Accuracy, "mean per-class, per-class and head/medium/tail accuracy");
        builtin!(m, "prior_estimate", Evaluator, PriorEstimate, "learned vs true training prior (r, slope, KL)");
        builtin!(m, "iou", Evaluator, Iou, "per-class IoU, mIoU, tail mIoU, mean pixel accuracy");
        Self { kinds: m }
    }

    /// Add a user-defined backbone kind. Fails if the name is taken.
    pub fn register_backbone(&mut self, backbone: Arc<dyn CustomBackbone>) -> Result<(), String> {
        let name = backbone.kind().to_string();
        if self.kinds.contains_key(&name) {
            return Err(format!("node kind `{name}` is already registered"));
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("kind name `{name}` must be non-empty ASCII letters, digits and `_`"));
        }
        self.kinds.insert(
            name.clone(),
            KindInfo {
                name,
                category: Category::Backbone,
                summary: backbone.summary().into(),
                parser: Parser::Custom(backbone),
            },
        );
        Ok(())
    }

    /// All kinds, by name.
    pub fn kinds(&self) -> impl Iterator<Item = &KindInfo> {
        self.kinds.values()
    }

    /// All kind names.
    pub fn names(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    /// Look a kind up.
    pub fn get(&self, kind: &str) -> Option<&KindInfo> {
        self.kinds.get(kind)
    }

    /// The user implementation of a custom kind.
    pub fn custom(&self, kind: &str) -> Option<&dyn CustomBackbone> {
        match &self.kinds.get(kind)?.parser {
            Parser::Custom(c) => Some(c.as_ref()),
            Parser::Builtin(_) => None,
        }
    }

    /// Parse a node's parameters (without `kind`) as `kind`.
    pub fn parse(&self, kind: &str, params: &Params) -> Result<Op, ParseError> {
        let info = self.kinds.get(kind).ok_or(ParseError::UnknownKind)?;
        match &info.parser {
            Parser::Builtin(f) => f(params).map_err(ParseError::Serde),
            Parser::Custom(c) => {
                let mut dict: Dict = params.as_dict().cloned().unwrap_or_default();
                let input = dict.remove("input").ok_or_else(|| {
                    ParseError::Serde(figment::Error::from(figment::error::Kind::MissingField("input".into())))
                })?;
                let input_str = input.as_str().map(str::to_string).ok_or_else(|| {
                    ParseError::Serde(
                        figment::Error::from(format!("`input` must be a node name, got {input:?}")).with_path("input"),
                    )
                })?;
                let input = NodeRef::parse(&input_str)
                    .map_err(|m| ParseError::Serde(figment::Error::from(m).with_path("input")))?;
                let rest = Value::from(dict);
                c.validate(&rest).map_err(ParseError::Custom)?;
                Ok(Op::Custom(CustomBackboneParams { kind: kind.into(), input, params: rest }))
            }
        }
    }
}

/// Why a node could not be parsed.
#[derive(Debug)]
pub enum ParseError {
    /// No such kind.
    UnknownKind,
    /// A field is missing, unknown or of the wrong type.
    Serde(figment::Error),
    /// A custom kind rejected its parameters.
    Custom(String),
}
