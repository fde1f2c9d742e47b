//! The pipeline specification: typed serde structs for every section of a pipeline file, and
//! the loader that layers the YAML file, `NPE_` environment variables and `--set` flags with
//! figment, collecting every error with its location.

mod data;
pub(crate) mod load;
mod locate;
pub mod ranges;
mod train;
pub mod yaml_map;

pub use data::{
    AugmentSpec, CropSpec, DataFormat, DataSpec, LoaderSpec, LongTailSpec, NormalizeSpec, OnCorrupt, Profile,
};
pub(crate) use load::field as parse_field;
pub use load::{LoadedPipeline, Overrides, load_file, load_source};
pub use locate::Locator;
pub use train::{
    CheckpointSpec, EvalSpec, OptimizerKind, OptimizerSpec, ParamGroup, ScheduleKind, ScheduleSpec, TrainSpec,
};

use crate::types::Params;
pub use crate::types::Task;

/// One entry of `nodes:` before its kind is resolved.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Node name (the key under `nodes:`).
    pub name: String,
    /// The `kind` field.
    pub kind: String,
    /// All other fields.
    pub params: Params,
}

/// A whole pipeline, typed (nodes still untyped until the IR resolves their kinds).
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    /// Short name (used for the default output folder).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Seed for initialisation, sampling, shuffling and augmentation.
    pub seed: u64,
    /// Classification or segmentation.
    pub task: Task,
    /// Data section.
    pub data: DataSpec,
    /// Nodes in file order.
    pub nodes: Vec<NodeSpec>,
    /// Training section.
    pub train: TrainSpec,
    /// Evaluation section.
    pub eval: EvalSpec,
}

/// Top-level keys of a pipeline file.
pub const SECTIONS: [&str; 8] = ["name", "description", "seed", "task", "data", "nodes", "train", "eval"];
