//! References from one node to another (`backbone`, `data.label`).

use crate::error::Result;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A reference to a node's output: `name` or `name.output` (only `data` has named outputs:
/// `data.image`, the default, and `data.label`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeRef {
    /// Referenced node name.
    pub node: String,
    /// Named output, if any.
    pub output: Option<String>,
}

impl NodeRef {
    /// Parse `name` or `name.output`.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty node reference".into());
        }
        match s.split_once('.') {
            Some((n, o)) if !n.is_empty() && !o.is_empty() && !o.contains('.') => {
                Ok(Self { node: n.into(), output: Some(o.into()) })
            }
            Some(_) => Err(format!("bad node reference `{s}`: write `node` or `node.output`").into()),
            None => Ok(Self { node: s.into(), output: None }),
        }
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.output {
            Some(o) => write!(f, "{}.{o}", self.node),
            None => write!(f, "{}", self.node),
        }
    }
}

impl<'de> Deserialize<'de> for NodeRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NodeRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for NodeRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
