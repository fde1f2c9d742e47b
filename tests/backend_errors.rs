//! A tensor operation that fails inside a node reaches the user naming the node and the
//! operation, on every backend: libtorch returns the error, burn panics (caught by
//! `npe_core::tensor::guarded`). The node here is a user kind with a bug the IR cannot see:
//! its shape inference is right, its forward multiplies matrices of the wrong shapes.

mod common;
use common::{backends, quiet_run};
use npe_core::Registry;
use npe_core::backend::{Device, ExecError};
use npe_core::kind::{Cx, Declare, NodeDef, Value, first};
use npe_core::train::{Session, TrainError};
use npe_core::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::Deserialize;

/// A head whose forward computes `x · x` for `x` of shape [N, D] (wrong unless N = D).
#[derive(Clone, Debug, Deserialize)]
struct BuggyHead {
    input: NodeRef,
}

impl NodeDef for BuggyHead {
    const KIND: &'static str = "buggy_head";
    const CATEGORY: Category = Category::Head;
    const SUMMARY: &'static str = "a head with a shape bug (test only)";
    type Lowered = ();

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }
    fn infer(&self, inputs: &[Sig], cx: &InferCtx) -> npe_core::error::Result<Sig> {
        npe_core::ensure!(inputs[0].spatial.is_none(), "buggy_head takes features");
        Ok(Sig::vector(Role::Logits, cx.num_classes))
    }
    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}
    fn forward(&self, _: &(), cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let x = first(inputs)?.flat(cx.ops)?;
        Ok(Value::Vec(cx.ops.matmul(&x, &x)?))
    }
}

const PIPELINE: &str = "name: buggy
seed: 0
data:
  source: synthetic
  synthetic: {classes: 4, size: 4, channels: 1, per_class: 40, test_per_class: 5, noise: 1.0}
nodes:
  features: {kind: mlp, input: data, hidden: [6]}
  logits:   {kind: buggy_head, input: features}
  ce:       {kind: cross_entropy, input: logits}
train: {epochs: 1, batch_size: 16, optimizer: {kind: sgd, lr: 0.1}}
";

#[test]
fn a_failing_operation_names_the_node_and_the_operation_on_every_backend() {
    let mut registry = Registry::builtin();
    registry.register::<BuggyHead>().unwrap();
    let src = npe_core::source::SourceText::from_string("buggy.yaml", PIPELINE);
    let loaded = npe_core::spec::load_source(src, &Default::default()).unwrap_or_else(|d| panic!("{d}"));
    let ir = npe_core::ir::build(&loaded, &registry).unwrap_or_else(|d| panic!("{d}")).0;
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut session = Session::new(ir.clone(), &registry, backend.as_ref(), Device::Cpu).unwrap();
        let err = session.train(&quiet_run(dir.path())).unwrap_err();
        let shown = err.to_string();
        let name = backend.name();
        assert!(shown.contains("node `logits`") && shown.contains("operation `matmul` failed"), "{name}: {shown}");
        // The structure survives to the top: the failing node and operation can be matched.
        let TrainError::Exec(exec) = &err else { panic!("{name}: not an execution error: {err:?}") };
        assert!(matches!(exec, ExecError::Node { node, .. } if node == "logits"), "{name}: {exec:?}");
        assert_eq!(exec.op(), Some("matmul"), "{name}");
        // And the library's own words are kept: a shape message, not a generic one.
        assert!(shown.contains('6') && shown.contains("16"), "{name}: the shapes are not shown: {shown}");
    }
}
