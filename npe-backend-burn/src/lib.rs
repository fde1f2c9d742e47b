//! burn

/// Implementations of user-registered node kinds for this backend.
#[derive(Clone, Default)]
pub struct CustomKinds {}
