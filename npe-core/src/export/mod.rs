//! Export to ONNX (`npe export RUN_DIR --format onnx`): the run's model, with every requested
//! output (raw logits, NPE-LA with its centring and scale, `scale: auto` with its stored scale,
//! post-hoc LA with its log-prior) as a named graph output. The lowered plan's inference pass runs
//! over a recording [`Ops`](crate::tensor::Ops) ([`record::Recorder`]), so every node kind,
//! a user's included, exports without export code of its own. Parameters are initializers, batch
//! norm is in inference form, the batch dimension is dynamic, and the preprocessing (mean, std,
//! input size, channels) and class names are in `metadata_props`.

pub mod onnx_pb;
pub mod record;

use crate::backend::{Device, Request};
use crate::batch::HostBatch;
use crate::ir::Ir;
use crate::predict::{InputSpec, PredictError, load_model};
use crate::registry::Registry;
use crate::train::calibrations::Calibrations;
use onnx_pb::tensor_shape_proto::{Dimension, dimension};
use onnx_pb::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto, TypeProto,
    ValueInfoProto, type_proto,
};
use prost::Message;
use record::{Recorder, RecordingBackend, TRACE_BATCH};
use std::collections::HashSet;
use std::path::Path;

/// The ONNX operator set the graphs use.
pub const OPSET: i64 = 17;

/// A float tensor's type with the traced batch dimension named `N`.
fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| Dimension {
            denotation: None,
            value: Some(if i == 0 && d == TRACE_BATCH {
                dimension::Value::DimParam("N".into())
            } else {
                dimension::Value::DimValue(d as i64)
            }),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(onnx_pb::tensor_proto::DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

/// The ONNX model (serialised) of `ir` with `model`'s weights, giving `outputs`.
pub fn onnx(
    ir: &Ir,
    model: &Path,
    calib: Option<&Calibrations>,
    run: &str,
    outputs: &[String],
    registry: &Registry,
) -> Result<Vec<u8>, PredictError> {
    let recorder = Recorder::default();
    let backend = RecordingBackend(recorder.clone());
    let exec = load_model(ir, model, calib, run, outputs, (registry, &backend, Device::Cpu))?;
    record(ir, exec, &recorder, outputs, calib)
}

/// The ONNX model of `exec`, an executor built on [`RecordingBackend`]`(recorder)` for `ir`
/// (weights and calibrations already set), giving `outputs`.
pub fn record(
    ir: &Ir,
    mut exec: Box<dyn crate::backend::Executor>,
    recorder: &Recorder,
    outputs: &[String],
    calib: Option<&Calibrations>,
) -> Result<Vec<u8>, PredictError> {
    let input = InputSpec::of(ir)?;
    let shape = [TRACE_BATCH, input.channels, input.size[0], input.size[1]];
    let batch = trace_batch(shape);
    recorder.arm(&shape);
    let requests: Vec<Request> = outputs.iter().map(|o| Request::Output(o.clone())).collect();
    exec.infer(&batch, &requests)?;
    let mut g = std::mem::take(&mut *recorder.graph.lock().expect("graph"));
    let image = g.input.clone().ok_or_else(|| {
        PredictError::Exec(crate::backend::ExecError::Internal("the model never read its input image".into()))
    })?;
    if g.outputs.len() != outputs.len() {
        return Err(PredictError::Exec(crate::backend::ExecError::Internal(format!(
            "recorded {} outputs for the {} requested",
            g.outputs.len(),
            outputs.len()
        ))));
    }
    // Named outputs, then only the initializers some node reads.
    let mut graph_outputs = vec![];
    for (name, r) in outputs.iter().zip(&g.outputs) {
        g.nodes.push(NodeProto {
            input: vec![r.name.clone()],
            output: vec![name.clone()],
            name: Some(format!("output_{name}")),
            op_type: Some("Identity".into()),
            ..Default::default()
        });
        graph_outputs.push(value_info(name, &r.shape));
    }
    let used: HashSet<&str> = g.nodes.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
    let initializers =
        g.initializers.into_iter().filter(|t| t.name.as_deref().is_some_and(|n| used.contains(n))).collect();
    let metadata_props = metadata(ir, &input, outputs, calib);
    let model = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
        producer_name: Some("npe".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        model_version: Some(1),
        doc_string: Some(format!("{} exported by npe", ir.name)),
        graph: Some(GraphProto {
            name: Some(ir.name.clone()),
            node: g.nodes,
            initializer: initializers,
            input: vec![value_info(&image.name, &image.shape)],
            output: graph_outputs,
            ..Default::default()
        }),
        metadata_props,
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}

/// A zero batch of `shape` to trace the model with.
fn trace_batch(shape: [usize; 4]) -> HostBatch {
    HostBatch {
        images: vec![0.0; shape.iter().product()],
        shape,
        labels: vec![0; shape[0]],
        dense: false,
        indices: (0..shape[0] as u32).collect(),
        global_len: 0,
        region: None,
    }
}

/// The `npe.*` metadata: what the input must be (size, normalisation, resize), the class names,
/// the outputs and where the calibrations came from.
fn metadata(
    ir: &Ir,
    input: &InputSpec,
    outputs: &[String],
    calib: Option<&Calibrations>,
) -> Vec<StringStringEntryProto> {
    let classes = calib.map(|c| c.classes.clone()).filter(|c| c.len() == ir.num_classes());
    let meta = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
    let json = |v: &dyn erased::Json| v.json();
    vec![
        meta("npe.pipeline", ir.name.clone()),
        meta("npe.task", if ir.data.is_dense() { "segmentation" } else { "classification" }.into()),
        meta("npe.input", "image: float32 [N, channels, height, width], (pixel / 255 - mean) / std".into()),
        meta("npe.channels", input.channels.to_string()),
        meta("npe.height", input.size[0].to_string()),
        meta("npe.width", input.size[1].to_string()),
        meta("npe.mean", json(&input.mean)),
        meta("npe.std", json(&input.std)),
        meta("npe.resize", json(&ir.data_spec.augment.resize)),
        meta("npe.center_crop", json(&ir.data_spec.augment.center_crop)),
        meta(
            "npe.classes",
            json(&classes.unwrap_or_else(|| (0..ir.num_classes()).map(|i| format!("class_{i}")).collect())),
        ),
        meta("npe.outputs", json(&outputs.to_vec())),
        meta("npe.calibration", calib.map_or("none".into(), |c| c.provenance.clone())),
    ]
}

/// JSON text of the metadata values.
mod erased {
    /// A value written as JSON.
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}
