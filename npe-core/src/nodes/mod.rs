//! The node vocabulary: every kind a pipeline can use, with typed, documented parameters.
//!
//! A node kind is parsed from its YAML mapping into an [`Op`] (unknown fields are errors), and
//! [`Op::infer`] computes its output [`Sig`] from its inputs' signatures; the IR builder calls both
//! and turns failures into located diagnostics. Backends match on [`Op`] to execute a node.

mod adjust;
mod backbone;
mod eval;
mod head;
mod loss;
mod node_ref;

pub use adjust::{NpeLaParams, PosthocLaParams, ResizeParams, ResizeTo};
pub use backbone::{
    CustomBackboneParams, FcnResNetParams, MlpParams, RESNET_DEPTHS, ResNetCifarParams, SmallCnnParams, UNetParams,
};
pub use eval::{AccuracyParams, GroupBy, GroupsSpec, IouParams, PriorEstimateParams, TailSpec};
pub use head::{LinearParams, PemParams};
pub use loss::{CrossEntropyParams, LogitAdjustedCeParams, OneWayLogisticParams, Reduction};
pub use node_ref::NodeRef;

use crate::ir::{Role, Sig};
use crate::spec::Task;

/// A node's parameters as given in YAML (a figment value, usually a dict).
pub type Params = figment::value::Value;

/// What family a kind belongs to (drives validation, rendering and execution order).
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
    /// Computes metrics on the test split.
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
}

/// One named input of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Port (the YAML field holding the reference).
    pub port: String,
    /// Referenced node (and output).
    pub source: NodeRef,
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

/// A parsed node: its kind and typed parameters.
#[derive(Clone, Debug)]
pub enum Op {
    /// `mlp` backbone.
    Mlp(MlpParams),
    /// `resnet_cifar` backbone.
    ResNetCifar(ResNetCifarParams),
    /// `small_cnn` backbone.
    SmallCnn(SmallCnnParams),
    /// `unet` backbone (dense features).
    UNet(UNetParams),
    /// `fcn_resnet` backbone (dense features).
    FcnResNet(FcnResNetParams),
    /// A backbone kind registered by a user crate.
    Custom(CustomBackboneParams),
    /// `linear` classifier head.
    Linear(LinearParams),
    /// `pem` prior estimation modules.
    Pem(PemParams),
    /// `cross_entropy` loss.
    CrossEntropy(CrossEntropyParams),
    /// `logit_adjusted_ce` loss (needs class counts).
    LogitAdjustedCe(LogitAdjustedCeParams),
    /// `one_way_logistic` loss on PEM outputs.
    OneWayLogistic(OneWayLogisticParams),
    /// `npe_la` inference adjustment.
    NpeLa(NpeLaParams),
    /// `posthoc_la` inference adjustment with class counts.
    PosthocLa(PosthocLaParams),
    /// `resize` of logits or PEM maps.
    Resize(ResizeParams),
    /// `accuracy` evaluator.
    Accuracy(AccuracyParams),
    /// `prior_estimate` evaluator.
    PriorEstimate(PriorEstimateParams),
    /// `iou` evaluator (segmentation).
    Iou(IouParams),
}

impl Op {
    /// The YAML `kind` of this op.
    pub fn kind(&self) -> &str {
        match self {
            Op::Mlp(_) => "mlp",
            Op::ResNetCifar(_) => "resnet_cifar",
            Op::SmallCnn(_) => "small_cnn",
            Op::UNet(_) => "unet",
            Op::FcnResNet(_) => "fcn_resnet",
            Op::Custom(c) => &c.kind,
            Op::Linear(_) => "linear",
            Op::Pem(_) => "pem",
            Op::CrossEntropy(_) => "cross_entropy",
            Op::LogitAdjustedCe(_) => "logit_adjusted_ce",
            Op::OneWayLogistic(_) => "one_way_logistic",
            Op::NpeLa(_) => "npe_la",
            Op::PosthocLa(_) => "posthoc_la",
            Op::Resize(_) => "resize",
            Op::Accuracy(_) => "accuracy",
            Op::PriorEstimate(_) => "prior_estimate",
            Op::Iou(_) => "iou",
        }
    }

    /// Family of this op.
    pub fn category(&self) -> Category {
        match self {
            Op::Mlp(_) | Op::ResNetCifar(_) | Op::SmallCnn(_) | Op::UNet(_) | Op::FcnResNet(_) | Op::Custom(_) => {
                Category::Backbone
            }
            Op::Linear(_) => Category::Head,
            Op::Pem(_) => Category::Pem,
            Op::CrossEntropy(_) | Op::LogitAdjustedCe(_) | Op::OneWayLogistic(_) => Category::Loss,
            Op::NpeLa(_) | Op::PosthocLa(_) | Op::Resize(_) => Category::Adjuster,
            Op::Accuracy(_) | Op::PriorEstimate(_) | Op::Iou(_) => Category::Evaluator,
        }
    }

    /// The node's inputs, in port order.
    pub fn inputs(&self) -> Vec<Input> {
        let one = |port: &str, r: &NodeRef| vec![Input { port: port.into(), source: r.clone() }];
        match self {
            Op::Mlp(p) => one("input", &p.input),
            Op::ResNetCifar(p) => one("input", &p.input),
            Op::SmallCnn(p) => one("input", &p.input),
            Op::UNet(p) => one("input", &p.input),
            Op::FcnResNet(p) => one("input", &p.input),
            Op::Custom(p) => one("input", &p.input),
            Op::Linear(p) => one("input", &p.input),
            Op::Pem(p) => one("input", &p.input),
            Op::CrossEntropy(p) => one("input", &p.input),
            Op::LogitAdjustedCe(p) => one("input", &p.input),
            Op::OneWayLogistic(p) => one("input", &p.input),
            Op::NpeLa(p) => {
                vec![
                    Input { port: "logits".into(), source: p.logits.clone() },
                    Input { port: "pem".into(), source: p.pem.clone() },
                ]
            }
            Op::PosthocLa(p) => one("input", &p.input),
            Op::Resize(p) => one("input", &p.input),
            Op::Accuracy(p) => p
                .inputs
                .iter()
                .enumerate()
                .map(|(i, r)| Input { port: format!("inputs.{i}"), source: r.clone() })
                .collect(),
            Op::PriorEstimate(p) => one("input", &p.input),
            Op::Iou(p) => p
                .inputs
                .iter()
                .enumerate()
                .map(|(i, r)| Input { port: format!("inputs.{i}"), source: r.clone() })
                .collect(),
        }
    }

    /// Output signature from the inputs' signatures (same order as [`inputs`](Self::inputs)).
    /// The error says what is wrong in the user's terms.
    pub fn infer(
        &self,
        inputs: &[Sig],
        ctx: &InferCtx,
        custom: Option<&dyn crate::registry::CustomBackbone>,
    ) -> Result<Sig, String> {
        match self {
            Op::Mlp(p) => p.infer(&inputs[0]),
            Op::ResNetCifar(p) => p.infer(&inputs[0]),
            Op::SmallCnn(p) => p.infer(&inputs[0]),
            Op::UNet(p) => p.infer(&inputs[0]),
            Op::FcnResNet(p) => p.infer(&inputs[0]),
            Op::Custom(p) => match custom {
                Some(c) => {
                    expect_role(&inputs[0], &[Role::Image, Role::Features], "input")?;
                    let out = c.output(&p.params, &inputs[0])?;
                    Ok(out.with_role(Role::Features))
                }
                None => Err(format!("no backbone kind `{}` is registered", p.kind)),
            },
            Op::Linear(p) => p.infer(&inputs[0], ctx),
            Op::Pem(p) => p.infer(&inputs[0], ctx),
            Op::CrossEntropy(_) | Op::LogitAdjustedCe(_) => {
                expect_role(&inputs[0], &[Role::Logits], "input")?;
                check_task_shape(&inputs[0], ctx)?;
                check_label_size(&inputs[0], ctx, "input")?;
                Ok(Sig::scalar(Role::Loss))
            }
            Op::OneWayLogistic(_) => {
                if !matches!(inputs[0].role, Role::Pem { .. }) {
                    return Err(format!("`input` must be PEM outputs (a `pem` node), got {}", inputs[0].role));
                }
                check_task_shape(&inputs[0], ctx)?;
                check_label_size(&inputs[0], ctx, "input")?;
                Ok(Sig::scalar(Role::Loss))
            }
            Op::NpeLa(p) => p.infer(&inputs[0], &inputs[1]),
            Op::PosthocLa(_) => {
                expect_role(&inputs[0], &[Role::Logits], "input")?;
                Ok(inputs[0])
            }
            Op::Resize(p) => p.infer(&inputs[0]),
            Op::Accuracy(_) => {
                for (i, s) in inputs.iter().enumerate() {
                    expect_role(s, &[Role::Logits], &format!("inputs.{i}"))?;
                    if s.is_map() {
                        return Err(format!("`inputs.{i}` is a dense map ({s}); use `iou` for segmentation outputs"));
                    }
                }
                Ok(Sig::scalar(Role::Report))
            }
            Op::PriorEstimate(_) => {
                if !matches!(inputs[0].role, Role::Pem { .. }) {
                    return Err(format!("`input` must be a `pem` node, got {}", inputs[0].role));
                }
                Ok(Sig::scalar(Role::Report))
            }
            Op::Iou(_) => {
                for (i, s) in inputs.iter().enumerate() {
                    expect_role(s, &[Role::Logits], &format!("inputs.{i}"))?;
                    if !s.is_map() {
                        return Err(format!(
                            "`inputs.{i}` is not a dense map ({s}); use `accuracy` for classification"
                        ));
                    }
                }
                Ok(Sig::scalar(Role::Report))
            }
        }
    }
}

/// Error unless `sig` has one of `roles`.
pub(crate) fn expect_role(sig: &Sig, roles: &[Role], port: &str) -> Result<(), String> {
    if roles.contains(&sig.role) {
        return Ok(());
    }
    let want: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    Err(format!("`{port}` must be {}, got {sig}", want.join(" or ")))
}

/// Dense losses and metrics compare maps with the label maps pixel by pixel: sizes must match.
fn check_label_size(sig: &Sig, ctx: &InferCtx, port: &str) -> Result<(), String> {
    match (sig.spatial, ctx.label_size) {
        (Some(s), Some(l)) if s != l => Err(format!(
            "`{port}` is {}×{} but the labels are {}×{}: add a `resize` node (`kind: resize`, to the label size) and use it here",
            s[0], s[1], l[0], l[1]
        )),
        _ => Ok(()),
    }
}

/// Classification wants vector outputs, segmentation dense maps.
fn check_task_shape(sig: &Sig, ctx: &InferCtx) -> Result<(), String> {
    match (ctx.task, sig.is_map()) {
        (Task::Classification, true) => Err(format!(
            "dense output {sig} in a classification pipeline; end the backbone with global pooling or set `task: segmentation`"
        )),
        (Task::Segmentation, false) => {
            Err(format!("vector output {sig} in a segmentation pipeline; use a dense backbone (`unet`, `fcn_resnet`)"))
        }
        _ => Ok(()),
    }
}

/// Serde default helpers shared by the node files.
pub(crate) mod defaults {
    pub fn one() -> f64 {
        1.0
    }
    pub fn yes() -> bool {
        true
    }
    pub fn one_usize() -> usize {
        1
    }
}
