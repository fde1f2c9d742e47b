//! The built-in node kinds, one file each. A file here that implements [`NodeDef`] for its
//! parameter struct is a kind: the build script finds it, declares the module and registers it
//! (see `build.rs`); nothing else lists the kinds. Document a new kind in the README's pipeline
//! reference (`tests/readme.rs` checks every kind and field is there).
//!
//! [`NodeDef`]: crate::kind::NodeDef

include!(concat!(env!("OUT_DIR"), "/builtin_kinds.rs"));

pub use accuracy::{Accuracy, GroupBy, GroupsSpec};
pub use iou::{Iou, TailSpec};
pub use npe_la::{Auto, NpeLa, Readout, Scale};
pub use posthoc_la::{PosthocLa, PriorSource};
pub use prior_estimate::PriorEstimate;
