//! The built-in data sources, one file each. A file here that implements [`SourceDef`] for a
//! unit struct is a source: the build script finds it, declares the module and registers it
//! (see `build.rs`); nothing else lists the sources. Document a new source in the README's
//! `data` reference (`tests/readme.rs` checks every source and option is there).
//!
//! [`SourceDef`]: crate::data::source::SourceDef

include!(concat!(env!("OUT_DIR"), "/builtin_sources.rs"));
