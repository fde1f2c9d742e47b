//! Values flowing along the graph's edges.

use crate::backend::ExecError;
use crate::tensor::{Ops, Tensor};

/// A node's output on the device.
#[derive(Clone, Debug)]
pub enum Value {
    /// `[N, C]` vectors.
    Vec(Tensor),
    /// `[N, C, H, W]` maps.
    Map(Tensor),
    /// The outputs of M PEMs (each a `Vec` or `Map`).
    Pems(Vec<Value>),
    /// A scalar loss (`[1]`).
    Loss(Tensor),
}

fn wrong(want: &str, got: &Value) -> ExecError {
    let got = match got {
        Value::Vec(_) => "vectors",
        Value::Map(_) => "maps",
        Value::Pems(_) => "PEM outputs",
        Value::Loss(_) => "a loss",
    };
    ExecError::Internal(format!("expected {want}, got {got} (the IR should have rejected this pipeline)"))
}

impl Value {
    /// The tensor of a vector, map or loss.
    pub fn tensor(&self) -> Result<&Tensor, ExecError> {
        match self {
            Value::Vec(t) | Value::Map(t) | Value::Loss(t) => Ok(t),
            other => Err(wrong("a tensor", other)),
        }
    }

    /// Vectors as they are, maps flattened to `[N, C·H·W]`.
    pub fn flat(self, ops: &dyn Ops) -> Result<Tensor, ExecError> {
        match self {
            Value::Vec(t) => Ok(t),
            Value::Map(t) => {
                let s = ops.shape(&t)?;
                Ok(ops.reshape(&t, &[s[0], s[1..].iter().product()])?)
            }
            other => Err(wrong("vectors or maps", &other)),
        }
    }

    /// Maps as they are, vectors as `[N, C, 1, 1]`.
    pub fn map(self, ops: &dyn Ops) -> Result<Tensor, ExecError> {
        match self {
            Value::Map(t) => Ok(t),
            Value::Vec(t) => {
                let s = ops.shape(&t)?;
                Ok(ops.reshape(&t, &[s[0], s[1], 1, 1])?)
            }
            other => Err(wrong("vectors or maps", &other)),
        }
    }

    /// The outputs of a `pem` node.
    pub fn pems(self) -> Result<Vec<Value>, ExecError> {
        match self {
            Value::Pems(v) if !v.is_empty() => Ok(v),
            other => Err(wrong("PEM outputs", &other)),
        }
    }

    /// A tensor of the same kind (vector or map) as this value.
    pub fn like(&self, t: Tensor) -> Result<Value, ExecError> {
        match self {
            Value::Vec(_) => Ok(Value::Vec(t)),
            Value::Map(_) => Ok(Value::Map(t)),
            other => Err(wrong("vectors or maps", other)),
        }
    }
}

/// The input of a one-input node.
pub fn first(inputs: Vec<Value>) -> Result<Value, ExecError> {
    inputs.into_iter().next().ok_or_else(|| ExecError::Internal("a node ran without its input".into()))
}
