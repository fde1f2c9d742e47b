//! User-defined node kinds on burn.

use crate::ctx::NodeCtx;
use crate::error::BurnError;
use crate::value::Act;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The burn half of a custom backbone: its forward pass. Its parameters are the ones its core
/// half ([`npe_core::CustomBackbone::parameters`]) declares, read with [`NodeCtx::param`].
pub trait BurnBackbone: Send + Sync {
    /// Forward pass on the input (images `Act::Map`, or features).
    fn forward(&self, nc: &NodeCtx, input: Act) -> Result<Act, BurnError>;
}

/// Registered custom kinds.
#[derive(Clone, Default)]
pub struct CustomKinds {
    kinds: BTreeMap<String, Arc<dyn BurnBackbone>>,
}

impl CustomKinds {
    /// Register the burn implementation of `kind`.
    pub fn register(&mut self, kind: impl Into<String>, imp: Arc<dyn BurnBackbone>) {
        self.kinds.insert(kind.into(), imp);
    }

    /// The implementation of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn BurnBackbone>> {
        self.kinds.get(kind)
    }
}
