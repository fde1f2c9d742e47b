//! User-defined node kinds on libtorch.

use crate::ctx::NodeCtx;
use crate::error::Result;
use crate::value::Act;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The tch half of a custom backbone: its forward pass, reading the parameters its core half
/// declares with [`NodeCtx::param`].
pub trait TchBackbone: Send + Sync {
    /// Forward pass on the input.
    fn forward(&self, nc: &NodeCtx, input: Act) -> Result<Act>;
}

/// Registered custom kinds.
#[derive(Clone, Default)]
pub struct CustomKinds {
    kinds: BTreeMap<String, Arc<dyn TchBackbone>>,
}

impl CustomKinds {
    /// Register the tch implementation of `kind`.
    pub fn register(&mut self, kind: impl Into<String>, imp: Arc<dyn TchBackbone>) {
        self.kinds.insert(kind.into(), imp);
    }

    /// The implementation of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn TchBackbone>> {
        self.kinds.get(kind)
    }
}
