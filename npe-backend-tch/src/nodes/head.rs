//! Heads: the linear classifier and the PEMs.

use crate::ctx::NodeCtx;
use crate::error::Result;
use crate::value::Act;
use npe_core::nodes::{LinearParams, PemParams};

/// `linear`: matmul on vectors, 1×1 convolution on maps.
pub fn linear(nc: &NodeCtx, _p: &LinearParams, x: Act) -> Result<Act> {
    match x {
        Act::Map(t) => Ok(Act::Map(nc.conv(&t, "", 1, 0)?)),
        other => Ok(Act::Vec(nc.linear(&other.into_flat(), "")?)),
    }
}

/// `pem`: M modules on (optionally detached) features; hidden layers with ReLU, then the output layer.
pub fn pem(nc: &NodeCtx, p: &PemParams, x: Act) -> Result<Act> {
    let x = match x {
        Act::Vec(t) if p.detach => Act::Vec(t.detach()),
        Act::Map(t) if p.detach => Act::Map(t.detach()),
        other => other,
    };
    let mut outs = Vec::with_capacity(p.count);
    for m in 0..p.count {
        let out_prefix = if p.hidden.is_empty() { format!("{m}.") } else { format!("{m}.out.") };
        let o = match x.clone() {
            Act::Map(mut h) => {
                let pad = (p.kernel_size / 2) as i64;
                for j in 0..p.hidden.len() {
                    h = nc.conv(&h, &format!("{m}.hidden.{j}."), 1, pad)?.f_relu()?;
                }
                let pad = if p.hidden.is_empty() { pad } else { 0 };
                Act::Map(nc.conv(&h, &out_prefix, 1, pad)?)
            }
            other => {
                let mut h = other.into_flat();
                for j in 0..p.hidden.len() {
                    h = nc.linear(&h, &format!("{m}.hidden.{j}."))?.f_relu()?;
                }
                Act::Vec(nc.linear(&h, &out_prefix)?)
            }
        };
        outs.push(o);
    }
    Ok(Act::Pems(outs))
}
