//! Declaring a node's parameters: the code that declares a parameter gets the handle that its
//! forward pass uses, so names are written once.

use crate::types::{Init, ParamKind, ParamSpec};

/// A declared parameter or buffer: its position in the model's parameter list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub(crate) usize);

impl ParamId {
    /// Position in the parameter list (layout order).
    pub fn index(self) -> usize {
        self.0
    }
}

/// Collects the parameters of one node, named `node.scope.local` like PyTorch's state dicts.
pub struct Declare<'a> {
    node: &'a str,
    prefix: String,
    decay: bool,
    specs: &'a mut Vec<ParamSpec>,
}

impl<'a> Declare<'a> {
    /// Declarations of node `node`, appended to `specs`.
    pub fn new(node: &'a str, specs: &'a mut Vec<ParamSpec>) -> Self {
        Self { node, prefix: String::new(), decay: true, specs }
    }

    /// A sub-scope: names inside are prefixed with `name.` (nothing for an empty name).
    pub fn scope(&mut self, name: &str) -> Declare<'_> {
        let prefix = if name.is_empty() { self.prefix.clone() } else { format!("{}{name}.", self.prefix) };
        Declare { node: self.node, prefix, decay: self.decay, specs: &mut *self.specs }
    }

    /// Weights declared from here on are (not) subject to weight decay.
    pub fn set_decay(&mut self, decay: bool) -> &mut Self {
        self.decay = decay;
        self
    }

    /// A trainable weight.
    pub fn weight(&mut self, local: &str, shape: Vec<usize>, init: Init) -> ParamId {
        self.push(local, shape, init, ParamKind::Weight)
    }

    /// A buffer updated by the forward pass (batch-norm running statistics).
    pub fn buffer(&mut self, local: &str, shape: Vec<usize>, init: Init) -> ParamId {
        self.push(local, shape, init, ParamKind::Buffer)
    }

    fn push(&mut self, local: &str, shape: Vec<usize>, init: Init, kind: ParamKind) -> ParamId {
        let id = ParamId(self.specs.len());
        self.specs.push(ParamSpec {
            name: format!("{}.{}{local}", self.node, self.prefix),
            node: self.node.to_string(),
            shape,
            init,
            kind,
            decay: self.decay && kind == ParamKind::Weight,
        });
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_prefix_names_and_decay_applies_to_weights_only() {
        let mut specs = vec![];
        let mut d = Declare::new("f", &mut specs);
        let a = d.scope("layer1").scope("0").weight("weight", vec![2], Init::Zeros);
        d.set_decay(false);
        let b = d.weight("w", vec![1], Init::Ones);
        let c = d.scope("").buffer("running_mean", vec![1], Init::Zeros);
        assert_eq!((a.index(), b.index(), c.index()), (0, 1, 2));
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["f.layer1.0.weight", "f.w", "f.running_mean"]);
        assert_eq!(specs.iter().map(|s| s.decay).collect::<Vec<_>>(), [true, false, false]);
    }
}
