//! The contract between the core and a backend. The core owns data, the training loop, every
//! node's math, the optimisers, metrics and checkpoints; a backend owns tensors, autodiff and
//! devices, behind [`Backend`] and the tensor operations of [`crate::tensor::Ops`].

use crate::batch::HostBatch;
use crate::spec::OptimizerSpec;
use crate::tensor::{Ops, TensorError};
use crate::types::{NamedTensor, ParamSpec};
use std::collections::BTreeSet;
use std::fmt;

/// Where tensors live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA device N.
    Cuda(usize),
    /// The default wgpu adapter (Vulkan, Metal, DirectX; burn only).
    Wgpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Wgpu => write!(f, "wgpu"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            "wgpu" => Ok(Device::Wgpu),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`: use `cpu`, `cuda:N` or `wgpu`").into()),
        }
    }
}

/// Everything a backend needs to build an executor for a pipeline.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// Device.
    pub device: Device,
    /// CPU threads for kernels (0 = backend default).
    pub threads: usize,
    /// Parameters to allocate (the lowered plan's, `model::layout`).
    pub params: Vec<ParamSpec>,
    /// Their initial values (same order).
    pub initial: Vec<NamedTensor>,
    /// Optimiser settings.
    pub optimizer: OptimizerSpec,
    /// Nodes whose parameters are not updated.
    pub frozen: BTreeSet<String>,
    /// Training class prior (for `logit_adjusted_ce` and `posthoc_la`).
    pub class_prior: Vec<f64>,
    /// Label ignored by dense losses.
    pub ignore_index: i64,
}

/// What an [`Executor::infer`] call should return for a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The node's output as is: `[N, C]` (or `[N, C, H, W]`); PEM nodes: `[M, N, C, ...]`.
    Output(String),
    /// Argmax over the class axis: `[N]` or `[N, H, W]` (class indices as floats).
    Argmax(String),
    /// PEM outputs averaged over the spatial axes: `[M, N, C]`.
    SpatialMean(String),
    /// Per-class sums over the batch (and pixels): `[3, C]`, row 0 `Σ w_k h̄_k` (`h̄` a PEM
    /// node's output averaged over its PEMs, maps resized to the logits' size; 0 without
    /// `values`), row 1 `Σ w_k` (`w = softmax(weights)`, 1 without `weights`), row 2 the count.
    ClassSums {
        /// A `pem` node.
        values: Option<String>,
        /// A logits node whose softmax weighs each image (pixel) per class.
        weights: Option<String>,
    },
}

impl Request {
    /// The nodes this request reads.
    pub fn nodes(&self) -> Vec<&str> {
        match self {
            Request::Output(n) | Request::Argmax(n) | Request::SpatialMean(n) => vec![n],
            Request::ClassSums { values, weights } => values.iter().chain(weights).map(String::as_str).collect(),
        }
    }
}

/// A host tensor returned by [`Executor::infer`].
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Loss values of one training step (each loss node's weighted contribution).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepLosses {
    /// `(loss node, value)` in execution order.
    pub parts: Vec<(String, f64)>,
    /// Their sum (what was minimised).
    pub total: f64,
}

/// Errors of a backend, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The backend cannot run this node kind.
    #[error("backend `{backend}` cannot run node `{node}` of kind `{kind}`{}", .hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Unsupported {
        /// Backend name.
        backend: String,
        /// Node name.
        node: String,
        /// Node kind.
        kind: String,
        /// What to do.
        hint: Option<String>,
    },
    /// The device is not available.
    #[error("device {device}: {message}")]
    Device {
        /// Requested device.
        device: Device,
        /// Why not.
        message: String,
    },
    /// Imported tensors do not fit the model.
    #[error("parameter `{name}`: {message}")]
    Parameter {
        /// Parameter name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A collective of a data-parallel run failed (the message names the ranks involved).
    #[error("{0}")]
    Collective(String),
    /// A tensor operation failed: the operation, the backend's message and its source.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// An error while running one node of the pipeline.
    #[error("node `{node}`: {source}")]
    Node {
        /// The node's name in the pipeline.
        node: String,
        /// What failed.
        #[source]
        source: Box<ExecError>,
    },
    /// What the pipeline asks for cannot be given in this run (a calibration outside evaluation).
    #[error("{0}")]
    Unavailable(String),
    /// A broken invariant of npe (the IR should have rejected what got here): a bug.
    #[error("internal error (a bug in npe; please report it): {0}")]
    Internal(String),
}

impl ExecError {
    /// This error, raised while running node `node` (a node already named is kept).
    pub fn in_node(self, node: &str) -> Self {
        match self {
            e @ (ExecError::Node { .. } | ExecError::Collective(_)) => e,
            e => ExecError::Node { node: node.to_string(), source: Box::new(e) },
        }
    }

    /// The tensor operation that failed, if this error comes from one.
    pub fn op(&self) -> Option<&'static str> {
        match self {
            ExecError::Tensor(t) => t.op,
            ExecError::Node { source, .. } => source.op(),
            _ => None,
        }
    }
}

/// A tensor library; one per backend crate. It only provides tensor operations on a device:
/// the core's executor (`exec::build`) runs every pipeline on them.
pub trait Backend {
    /// Short name (`burn`, `tch`).
    fn name(&self) -> &'static str;
    /// The devices this build can use, as `--device` takes them (e.g. `cpu`, `cuda:N`, `wgpu`).
    fn devices(&self) -> Vec<String>;
    /// Tensor operations on `device`, with `threads` CPU threads (0 = the library's default).
    fn ops(&self, device: Device, threads: usize) -> Result<Box<dyn Ops>, ExecError>;
    /// The collective engines data-parallel training can use on this backend (`None`: none).
    fn collectives(&self) -> Option<String> {
        None
    }
}

/// A model on a device, able to take training steps and run inference.
pub trait Executor {
    /// Backend, device and threads, for logs and reports.
    fn describe(&self) -> String;
    /// Forward (training mode), losses, backward, one SGD step at learning rate `lr`.
    fn train_step(&mut self, batch: &HostBatch, lr: f64) -> Result<StepLosses, ExecError>;
    /// Losses of a batch without updating anything (training-mode forward, no step).
    fn losses(&mut self, batch: &HostBatch) -> Result<StepLosses, ExecError>;
    /// Forward in evaluation mode; one host tensor per request.
    fn infer(&mut self, batch: &HostBatch, requests: &[Request]) -> Result<Vec<HostTensor>, ExecError>;
    /// Every parameter and buffer, by name.
    fn export(&self) -> Result<Vec<NamedTensor>, ExecError>;
    /// Replace parameters/buffers by name. Unknown names or wrong shapes are errors.
    fn import(&mut self, tensors: &[NamedTensor]) -> Result<(), ExecError>;
    /// Optimiser state: momentum buffers, named after their parameter.
    fn export_optimizer(&self) -> Result<Vec<NamedTensor>, ExecError>;
    /// Restore optimiser state.
    fn import_optimizer(&mut self, tensors: &[NamedTensor]) -> Result<(), ExecError>;
    /// Give an adjuster the calibration it uses at inference (`npe_la`'s `readout` and
    /// `scale: auto`, `posthoc_la`'s `prior: predicted`), computed by the evaluation from
    /// unlabelled training images: a `[C]` vector and a scale. Not a parameter: never saved.
    fn set_calibration(&mut self, node: &str, vector: Option<&HostTensor>, scale: f64) -> Result<(), ExecError>;
    /// Join the data-parallel run `world`: check every rank runs the pipeline `pipeline_hash`
    /// names, then take rank 0's parameters and buffers. Training steps then sum over the ranks
    /// the gradients of each rank's share of the global batch's loss.
    fn join(&mut self, world: &crate::dist::World, pipeline_hash: &str) -> Result<(), ExecError> {
        let _ = (world, pipeline_hash);
        Err(ExecError::Collective("this executor cannot train data-parallel".into()))
    }
    /// This process's share of a sharded evaluation: `(rank, ranks)`; one process `(0, 1)`.
    fn eval_shard(&self) -> (usize, usize) {
        (0, 1)
    }
    /// Every rank's `words`, in rank order (one process: its own), through the run's rendezvous
    /// store: how a sharded evaluation's ranks exchange their tallies. Every rank calls it with the
    /// same `tag`; the others wait for rank 0 up to `timeout` while its heartbeat moves.
    fn all_gather(
        &mut self,
        tag: &str,
        words: &[u64],
        timeout: std::time::Duration,
    ) -> Result<Vec<Vec<u64>>, ExecError> {
        let _ = (tag, timeout);
        Ok(vec![words.to_vec()])
    }
    /// `values` summed over the ranks (unchanged in a single process): how ranks agree to stop.
    fn agree(&mut self, values: &[f64]) -> Result<Vec<f64>, ExecError> {
        Ok(values.to_vec())
    }
    /// Wait until every rank has reached the barrier `tag`, through the rendezvous store: the
    /// other ranks wait up to `timeout` for rank 0 (its evaluation and reports take longer than
    /// a collective may), rank 0 waits the collective timeout for them.
    fn barrier(&mut self, tag: &str, timeout: std::time::Duration) -> Result<(), ExecError> {
        let _ = (tag, timeout);
        Ok(())
    }
}
