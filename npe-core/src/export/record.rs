//! A recording implementation of [`Ops`]: every operation appends an ONNX node (or an
//! initializer) to a graph instead of computing, and returns a handle carrying the value's name
//! and shape. Running the lowered plan's inference forward pass over it turns any model, built-in
//! or user-defined, into an ONNX graph without per-kind export code. An operation ONNX cannot
//! express here (training, gradients) is an error naming it.

use super::onnx_pb::{AttributeProto, NodeProto, TensorProto, attribute_proto::AttributeType, tensor_proto::DataType};
use crate::backend::{Backend, Device, ExecError};
use crate::tensor::{
    AutodiffOps, BatchNormArgs, ConvOpts, CreationOps, DistOps, FusedOps, Grads, InplaceOps, MathOps, NnOps, Ops,
    PoolOpts, Precision, PrecisionOps, TResult, Tensor, TensorError,
};
use std::any::Any;
use std::sync::{Arc, Mutex};

/// The batch size the graph is traced with; reshapes to it become `-1` (a dynamic batch).
pub const TRACE_BATCH: usize = 7;

/// A recorded value.
#[derive(Clone, Debug)]
pub struct Rec {
    /// Its name in the graph.
    pub name: String,
    /// Its shape (batch dimension = [`TRACE_BATCH`] for values that depend on the input).
    pub shape: Vec<usize>,
}

/// The graph being recorded.
#[derive(Debug, Default)]
pub struct Graph {
    /// Nodes in execution order.
    pub nodes: Vec<NodeProto>,
    /// Constants and parameters.
    pub initializers: Vec<TensorProto>,
    /// The image input, once the traced batch was uploaded.
    pub input: Option<Rec>,
    /// The shape the next upload must have to be the input (set by [`Recorder::arm`]).
    armed: Option<Vec<usize>>,
    /// Values read back to the host after the input was seen: the graph's outputs, in order.
    pub outputs: Vec<Rec>,
    next: usize,
}

impl Graph {
    fn fresh(&mut self, stem: &str) -> String {
        self.next += 1;
        format!("{stem}_{}", self.next)
    }
}

/// The recording [`Ops`]; clones share one graph.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// The graph.
    pub graph: Arc<Mutex<Graph>>,
}

fn rec(t: &Tensor) -> TResult<&Rec> {
    t.get::<Rec>()
}

fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}
fn attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}
fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}
fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// An initializer of `f32` (raw little-endian) or `i64` values.
pub fn tensor_proto(name: &str, shape: &[usize], f: Option<&[f32]>, i: Option<&[i64]>) -> TensorProto {
    let raw: Vec<u8> = match (f, i) {
        (Some(f), _) => f.iter().flat_map(|v| v.to_le_bytes()).collect(),
        (_, Some(i)) => i.iter().flat_map(|v| v.to_le_bytes()).collect(),
        _ => vec![],
    };
    TensorProto {
        name: Some(name.into()),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: Some(if f.is_some() { DataType::Float as i32 } else { DataType::Int64 as i32 }),
        raw_data: Some(raw),
        ..Default::default()
    }
}

fn broadcast(a: &[usize], b: &[usize]) -> TResult<Vec<usize>> {
    if a.len() != b.len() {
        return Err(TensorError::new(format!("binary operation of ranks {} and {}", a.len(), b.len())));
    }
    Ok(a.iter().zip(b).map(|(&x, &y)| x.max(y)).collect())
}

impl Recorder {
    /// The next upload of `shape` is the graph's image input.
    pub fn arm(&self, shape: &[usize]) {
        self.graph.lock().expect("graph").armed = Some(shape.to_vec());
    }

    fn with<R>(&self, f: impl FnOnce(&mut Graph) -> R) -> R {
        f(&mut self.graph.lock().expect("graph"))
    }

    /// Append `op` over `inputs`, giving a value of `shape`.
    fn node(&self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, shape: Vec<usize>) -> Tensor {
        let name = self.with(|g| {
            let name = g.fresh(&op.to_lowercase());
            g.nodes.push(NodeProto {
                input: inputs.iter().map(|s| s.to_string()).collect(),
                output: vec![name.clone()],
                name: Some(name.clone()),
                op_type: Some(op.into()),
                attribute: attrs,
                ..Default::default()
            });
            name
        });
        Tensor::new(Rec { name, shape })
    }

    fn constant_f(&self, data: &[f32], shape: &[usize]) -> String {
        self.with(|g| {
            let name = g.fresh("const");
            g.initializers.push(tensor_proto(&name, shape, Some(data), None));
            name
        })
    }

    fn constant_i(&self, data: &[i64]) -> String {
        self.with(|g| {
            let name = g.fresh("ints");
            g.initializers.push(tensor_proto(&name, &[data.len()], None, Some(data)));
            name
        })
    }

    fn unary(&self, op: &str, t: &Tensor) -> TResult<Tensor> {
        let r = rec(t)?;
        Ok(self.node(op, &[&r.name], vec![], r.shape.clone()))
    }

    fn binary(&self, op: &str, a: &Tensor, b: &Tensor) -> TResult<Tensor> {
        let (a, b) = (rec(a)?, rec(b)?);
        let shape = broadcast(&a.shape, &b.shape)?;
        Ok(self.node(op, &[&a.name, &b.name], vec![], shape))
    }

    fn scalar(&self, op: &str, t: &Tensor, s: f64) -> TResult<Tensor> {
        let r = rec(t)?;
        let c = self.constant_f(&[s as f32], &vec![1; r.shape.len()]);
        Ok(self.node(op, &[&r.name, &c], vec![], r.shape.clone()))
    }

    fn reduce(&self, op: &str, t: &Tensor, dims: &[usize], keep: bool) -> TResult<Tensor> {
        let r = rec(t)?;
        let shape: Vec<usize> = r
            .shape
            .iter()
            .enumerate()
            .filter_map(|(i, &d)| if dims.contains(&i) { keep.then_some(1) } else { Some(d) })
            .collect();
        let axes: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        // Opset 17: ReduceSum takes the axes as an input, ReduceMean as an attribute.
        Ok(if op == "ReduceSum" {
            let a = self.constant_i(&axes);
            self.node(op, &[&r.name, &a], vec![attr_i("keepdims", keep as i64)], shape)
        } else {
            self.node(op, &[&r.name], vec![attr_ints("axes", &axes), attr_i("keepdims", keep as i64)], shape)
        })
    }
}

fn unsupported(what: &str) -> TensorError {
    TensorError::new(format!("`{what}` cannot be exported to ONNX (inference graphs only)"))
}

impl CreationOps for Recorder {
    fn upload(&self, data: &[f32], shape: &[usize]) -> TResult<Tensor> {
        let input = self.with(|g| {
            if g.armed.as_deref() == Some(shape) {
                g.armed = None;
                let r = Rec { name: "image".into(), shape: shape.to_vec() };
                g.input = Some(r.clone());
                Some(r)
            } else {
                None
            }
        });
        if let Some(r) = input {
            return Ok(Tensor::new(r));
        }
        let name = self.constant_f(data, shape);
        Ok(Tensor::new(Rec { name, shape: shape.to_vec() }))
    }
    fn upload_index(&self, data: &[i64], shape: &[usize]) -> TResult<Tensor> {
        let name = self.with(|g| {
            let name = g.fresh("index");
            g.initializers.push(tensor_proto(&name, shape, None, Some(data)));
            name
        });
        Ok(Tensor::new(Rec { name, shape: shape.to_vec() }))
    }
    fn download(&self, t: &Tensor) -> TResult<Vec<f32>> {
        let r = rec(t)?.clone();
        let n = r.shape.iter().product();
        self.with(|g| {
            if g.input.is_some() {
                g.outputs.push(r);
            }
        });
        Ok(vec![0.0; n])
    }
    fn shape(&self, t: &Tensor) -> TResult<Vec<usize>> {
        Ok(rec(t)?.shape.clone())
    }
    fn deep_copy(&self, t: &Tensor) -> TResult<Tensor> {
        Ok(t.clone())
    }
}

impl AutodiffOps for Recorder {
    fn parameter(&self, data: &[f32], shape: &[usize], _trainable: bool) -> TResult<Tensor> {
        let name = self.with(|g| {
            let name = g.fresh("param");
            g.initializers.push(tensor_proto(&name, shape, Some(data), None));
            name
        });
        Ok(Tensor::new(Rec { name, shape: shape.to_vec() }))
    }
    fn leaf(&self, stored: &Tensor, _trainable: bool) -> TResult<Tensor> {
        Ok(stored.clone())
    }
    fn backward(&self, _loss: &Tensor) -> TResult<Grads> {
        Err(unsupported("backward"))
    }
    fn grad(&self, _grads: &Grads, _leaf: &Tensor) -> TResult<Option<Tensor>> {
        Err(unsupported("grad"))
    }
    fn detach(&self, t: &Tensor) -> TResult<Tensor> {
        Ok(t.clone())
    }
    fn no_grad(&self) -> Box<dyn Any> {
        Box::new(())
    }
}

impl MathOps for Recorder {
    fn reshape(&self, t: &Tensor, shape: &[usize]) -> TResult<Tensor> {
        let r = rec(t)?;
        // The traced batch becomes -1 (the graph takes any batch size): the one target
        // dimension of the traced size, when the input carries the batch.
        let batch_dims = shape.iter().filter(|&&d| d == TRACE_BATCH).count();
        let batched = batch_dims == 1 && r.shape.contains(&TRACE_BATCH);
        let target: Vec<i64> = shape.iter().map(|&d| if batched && d == TRACE_BATCH { -1 } else { d as i64 }).collect();
        let s = self.constant_i(&target);
        Ok(self.node("Reshape", &[&r.name, &s], vec![], shape.to_vec()))
    }
    fn transpose(&self, t: &Tensor, d0: usize, d1: usize) -> TResult<Tensor> {
        let r = rec(t)?;
        let mut perm: Vec<i64> = (0..r.shape.len() as i64).collect();
        perm.swap(d0, d1);
        let mut shape = r.shape.clone();
        shape.swap(d0, d1);
        Ok(self.node("Transpose", &[&r.name], vec![attr_ints("perm", &perm)], shape))
    }
    fn cat(&self, ts: &[Tensor], dim: usize) -> TResult<Tensor> {
        let rs: Vec<&Rec> = ts.iter().map(rec).collect::<TResult<_>>()?;
        let mut shape = rs.first().ok_or_else(|| TensorError::new("cat of nothing"))?.shape.clone();
        shape[dim] = rs.iter().map(|r| r.shape[dim]).sum();
        let names: Vec<&str> = rs.iter().map(|r| r.name.as_str()).collect();
        Ok(self.node("Concat", &names, vec![attr_i("axis", dim as i64)], shape))
    }
    fn slice(&self, t: &Tensor, dim: usize, start: usize, end: usize, step: usize) -> TResult<Tensor> {
        let r = rec(t)?;
        let mut shape = r.shape.clone();
        shape[dim] = (end.min(r.shape[dim]).saturating_sub(start)).div_ceil(step.max(1));
        let (s, e, a, st) = (
            self.constant_i(&[start as i64]),
            self.constant_i(&[end as i64]),
            self.constant_i(&[dim as i64]),
            self.constant_i(&[step as i64]),
        );
        Ok(self.node("Slice", &[&r.name, &s, &e, &a, &st], vec![], shape))
    }
    fn pad(&self, t: &Tensor, dim: usize, before: usize, after: usize) -> TResult<Tensor> {
        let r = rec(t)?;
        let n = r.shape.len();
        let mut pads = vec![0i64; 2 * n];
        pads[dim] = before as i64;
        pads[n + dim] = after as i64;
        let p = self.constant_i(&pads);
        let mut shape = r.shape.clone();
        shape[dim] += before + after;
        Ok(self.node("Pad", &[&r.name, &p], vec![], shape))
    }
    fn add(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor> {
        self.binary("Add", a, b)
    }
    fn sub(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor> {
        self.binary("Sub", a, b)
    }
    fn mul(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor> {
        self.binary("Mul", a, b)
    }
    fn div(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor> {
        self.binary("Div", a, b)
    }
    fn add_scalar(&self, t: &Tensor, s: f64) -> TResult<Tensor> {
        self.scalar("Add", t, s)
    }
    fn mul_scalar(&self, t: &Tensor, s: f64) -> TResult<Tensor> {
        self.scalar("Mul", t, s)
    }
    fn powf_scalar(&self, t: &Tensor, p: f64) -> TResult<Tensor> {
        self.scalar("Pow", t, p)
    }
    fn neg(&self, t: &Tensor) -> TResult<Tensor> {
        self.unary("Neg", t)
    }
    fn exp(&self, t: &Tensor) -> TResult<Tensor> {
        self.unary("Exp", t)
    }
    fn log1p(&self, t: &Tensor) -> TResult<Tensor> {
        let one = self.add_scalar(t, 1.0)?;
        self.unary("Log", &one)
    }
    fn abs(&self, t: &Tensor) -> TResult<Tensor> {
        self.unary("Abs", t)
    }
    fn sqrt(&self, t: &Tensor) -> TResult<Tensor> {
        self.unary("Sqrt", t)
    }
    fn relu(&self, t: &Tensor) -> TResult<Tensor> {
        self.unary("Relu", t)
    }
    fn sum_dims(&self, t: &Tensor, dims: &[usize], keepdim: bool) -> TResult<Tensor> {
        self.reduce("ReduceSum", t, dims, keepdim)
    }
    fn mean_dims(&self, t: &Tensor, dims: &[usize], keepdim: bool) -> TResult<Tensor> {
        self.reduce("ReduceMean", t, dims, keepdim)
    }
    fn argmax(&self, t: &Tensor, dim: usize) -> TResult<Tensor> {
        let r = rec(t)?;
        let mut shape = r.shape.clone();
        shape.remove(dim);
        let i = self.node("ArgMax", &[&r.name], vec![attr_i("axis", dim as i64), attr_i("keepdims", 0)], shape.clone());
        let i = rec(&i)?.name.clone();
        Ok(self.node("Cast", &[&i], vec![attr_i("to", DataType::Float as i64)], shape))
    }
}

impl NnOps for Recorder {
    fn conv2d(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, o: ConvOpts) -> TResult<Tensor> {
        let (xr, wr) = (rec(x)?, rec(w)?);
        let k = wr.shape[2];
        let out = |d: usize| (d + 2 * o.padding - k) / o.stride + 1;
        let shape = vec![xr.shape[0], wr.shape[0], out(xr.shape[2]), out(xr.shape[3])];
        let mut inputs = vec![xr.name.as_str(), wr.name.as_str()];
        let br = b.map(rec).transpose()?;
        if let Some(b) = br {
            inputs.push(&b.name);
        }
        let p = o.padding as i64;
        let attrs = vec![
            attr_ints("kernel_shape", &[k as i64, wr.shape[3] as i64]),
            attr_ints("strides", &[o.stride as i64; 2]),
            attr_ints("pads", &[p; 4]),
            attr_i("group", o.groups as i64),
        ];
        Ok(self.node("Conv", &inputs, attrs, shape))
    }
    fn matmul(&self, a: &Tensor, b: &Tensor) -> TResult<Tensor> {
        let (ar, br) = (rec(a)?, rec(b)?);
        let shape = vec![ar.shape[0], br.shape[1]];
        Ok(self.node("MatMul", &[&ar.name, &br.name], vec![], shape))
    }
    fn batch_norm(&self, x: &Tensor, a: BatchNormArgs<'_>) -> TResult<(Tensor, Option<(Tensor, Tensor)>)> {
        if a.train {
            return Err(unsupported("batch_norm in training mode"));
        }
        let eps = a.eps;
        let names: Vec<String> = [x, a.weight, a.bias, a.running_mean, a.running_var]
            .iter()
            .map(|t| rec(t).map(|r| r.name.clone()))
            .collect::<TResult<_>>()?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let shape = rec(x)?.shape.clone();
        Ok((self.node("BatchNormalization", &refs, vec![attr_f("epsilon", eps as f32)], shape), None))
    }
    fn max_pool2d(&self, x: &Tensor, o: PoolOpts) -> TResult<Tensor> {
        let r = rec(x)?;
        let out = |d: usize| (d + 2 * o.padding - o.kernel) / o.stride + 1;
        let shape = vec![r.shape[0], r.shape[1], out(r.shape[2]), out(r.shape[3])];
        let p = o.padding as i64;
        let attrs = vec![
            attr_ints("kernel_shape", &[o.kernel as i64; 2]),
            attr_ints("strides", &[o.stride as i64; 2]),
            attr_ints("pads", &[p; 4]),
        ];
        Ok(self.node("MaxPool", &[&r.name], attrs, shape))
    }
    fn resize_bilinear(&self, x: &Tensor, size: [usize; 2]) -> TResult<Tensor> {
        let r = rec(x)?.clone();
        // Output sizes [N, C, h, w] with N taken from the input: the batch stays dynamic.
        let shape_of = self.node("Shape", &[&r.name], vec![], vec![4]);
        let (s, e, a) = (self.constant_i(&[0]), self.constant_i(&[2]), self.constant_i(&[0]));
        let nc = self.node("Slice", &[&rec(&shape_of)?.name, &s, &e, &a], vec![], vec![2]);
        let hw = self.constant_i(&[size[0] as i64, size[1] as i64]);
        let sizes = self.node("Concat", &[&rec(&nc)?.name, &hw], vec![attr_i("axis", 0)], vec![4]);
        let attrs = vec![attr_s("mode", "linear"), attr_s("coordinate_transformation_mode", "half_pixel")];
        let shape = vec![r.shape[0], r.shape[1], size[0], size[1]];
        Ok(self.node("Resize", &[&r.name, "", "", &rec(&sizes)?.name], attrs, shape))
    }
    fn log_softmax(&self, x: &Tensor, dim: usize) -> TResult<Tensor> {
        let r = rec(x)?;
        Ok(self.node("LogSoftmax", &[&r.name], vec![attr_i("axis", dim as i64)], r.shape.clone()))
    }
    fn gather(&self, x: &Tensor, dim: usize, index: &Tensor) -> TResult<Tensor> {
        let (xr, ir) = (rec(x)?, rec(index)?);
        Ok(self.node("GatherElements", &[&xr.name, &ir.name], vec![attr_i("axis", dim as i64)], ir.shape.clone()))
    }
}

impl InplaceOps for Recorder {}
impl FusedOps for Recorder {}
impl DistOps for Recorder {}

impl PrecisionOps for Recorder {
    fn autocast(&self, _p: Option<Precision>) -> TResult<()> {
        // The exported graph is float32 whatever precision the model trained in.
        Ok(())
    }
}

impl Ops for Recorder {
    fn describe(&self) -> String {
        "ONNX recorder".into()
    }
}

/// A [`Backend`] whose operations record into one shared graph.
pub struct RecordingBackend(pub Recorder);

impl Backend for RecordingBackend {
    fn name(&self) -> &'static str {
        "onnx"
    }
    fn devices(&self) -> Vec<String> {
        vec!["cpu".into()]
    }
    fn ops(&self, _device: Device, _threads: usize) -> Result<Box<dyn Ops>, ExecError> {
        Ok(Box::new(self.0.clone()))
    }
}
