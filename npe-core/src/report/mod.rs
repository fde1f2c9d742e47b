//! What runs leave behind and how people read it: the summary schemas (`summary.json`,
//! `metrics.jsonl`), `npe compare`'s tables, studies (planning a grid, aggregating its runs,
//! the tables, charts and HTML report), plots (SVG; PNG through resvg behind the default-on
//! `png` feature) and TensorBoard event files. Training writes through this module; nothing
//! here trains.

pub mod compare;
pub mod plot;
pub mod study;
pub mod study_report;
pub mod summary;
pub mod tensorboard;

pub use summary::{
    CalibrationReport, DataReport, EpochRecord, EvalOutput, EvalReport, PhaseSeconds, PriorReport, Summary,
};
