//! The registry of node kinds: the built-ins (the files of `nodes/`), plus kinds that user
//! crates add with [`Registry::register`] — one [`NodeDef`] impl, run by every backend.
//! See `examples/custom_backbone.rs`.

use crate::error::Result;
pub use crate::kind::{KindInfo, NodeDef, ParseError};

use crate::kind::Node;
use crate::types::Params;
use std::collections::BTreeMap;
use std::sync::Arc;

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

impl Registry {
    /// The built-in kinds.
    pub fn builtin() -> Self {
        Self { kinds: crate::nodes::builtin().into_iter().map(|k| (k.name.clone(), k)).collect() }
    }

    /// Add a kind defined outside npe. Fails if the name is taken or not a plain identifier.
    pub fn register<N: NodeDef>(&mut self) -> Result<()> {
        let info = KindInfo::of::<N>();
        let name = info.name.clone();
        if self.kinds.contains_key(&name) {
            return Err(format!("node kind `{name}` is already registered").into());
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("kind name `{name}` must be non-empty ASCII letters, digits and `_`").into());
        }
        self.kinds.insert(name, info);
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

    /// Parse a node's parameters (without `kind`) as `kind`.
    pub fn parse(&self, kind: &str, params: &Params) -> Result<Arc<dyn Node>, ParseError> {
        self.kinds.get(kind).ok_or(ParseError::UnknownKind)?.parse(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Category;

    #[test]
    fn builtins_come_from_the_node_files_with_their_declared_families() {
        let mut r = Registry::builtin();
        let names = r.names();
        for k in ["mlp", "resnet_cifar", "pem", "one_way_logistic", "focal", "npe_la", "accuracy"] {
            assert!(names.contains(&k), "{k} missing from {names:?}");
        }
        // One kind per file of src/nodes (the build script's discovery finds them all).
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/nodes"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != "mod.rs")
            .count();
        assert_eq!(names.len(), files, "{names:?}");
        drop(names);
        assert_eq!(r.get("focal").unwrap().category, Category::Loss);
        assert_eq!(r.get("npe_la").unwrap().category, Category::Adjuster);
        assert!(r.register::<crate::nodes::mlp::Mlp>().unwrap_err().to_string().contains("already registered"));
    }
}
