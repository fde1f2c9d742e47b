//! `npe_la`: `logits + (1/M) Σ_m (h_m − mean(h_m)) / scale`. The mean is over classes for
//! vectors and over (C, H, W) per image for maps; PEM maps are resized (bilinear) to the logits.

use crate::backend::ExecError;
use crate::kind::{Adjust, Cx, Declare, NodeDef, Value, defaults, expect_role};
use crate::types::{Category, InferCtx, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

/// `npe_la` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NpeLa {
    /// Raw logits.
    pub logits: NodeRef,
    /// PEM outputs.
    pub pem: NodeRef,
    /// Scale factor s ≥ 1 weakens the adjustment (LA with tau = 1/s). Default 1.
    #[serde(default = "defaults::one")]
    pub scale: f64,
}

impl NodeDef for NpeLa {
    const KIND: &'static str = "npe_la";
    const CATEGORY: Category = Category::Adjuster;
    const SUMMARY: &'static str = "logits + centred mean PEM output / s (no counts needed)";
    type Lowered = ();

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("logits", &self.logits), Input::new("pem", &self.pem)]
    }

    fn infer(&self, inputs: &[Sig], _: &InferCtx) -> Result<Sig, String> {
        let (logits, pem) = (&inputs[0], &inputs[1]);
        expect_role(logits, &[Role::Logits], "logits")?;
        if !matches!(pem.role, Role::Pem { .. }) {
            return Err(format!("`pem` must be a `pem` node, got {pem}"));
        }
        if logits.channels != pem.channels {
            return Err(format!(
                "class count mismatch: logits have {} classes, PEMs {}",
                logits.channels, pem.channels
            ));
        }
        if logits.is_map() != pem.is_map() {
            return Err(format!("logits {logits} and PEM outputs {pem} must both be vectors or both maps"));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!("`scale` must be > 0, got {}", self.scale));
        }
        Ok(*logits)
    }

    fn lower(&self, _: &mut Declare, _: &[Sig], _: &Sig) {}

    fn forward(&self, _: &(), cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let ops = cx.ops;
        let mut it = inputs.into_iter();
        let (logits, pems) = (it.next(), it.next().map(Value::pems));
        let (Some(logits), Some(pems)) = (logits, pems) else {
            return Err(ExecError::Backend("npe_la needs logits and PEM outputs".into()));
        };
        let pems = pems?;
        let l = logits.tensor()?;
        let shape = ops.shape(l)?;
        let map = matches!(logits, Value::Map(_));
        let mut adj = None;
        for h in &pems {
            let h = if map {
                let h = h.clone().map(ops)?;
                let hs = ops.shape(&h)?;
                if hs[2..] == shape[2..] { h } else { ops.resize_bilinear(&h, [shape[2], shape[3]])? }
            } else {
                h.clone().flat(ops)?
            };
            let dims: &[usize] = if map { &[1, 2, 3] } else { &[1] };
            let centred = ops.sub(&h, &ops.mean_dims(&h, dims, true)?)?;
            adj = Some(match adj {
                Some(a) => ops.add(&a, &centred)?,
                None => centred,
            });
        }
        let adj = adj.expect("pems() is never empty");
        let scaled = ops.mul_scalar(&adj, 1.0 / (pems.len() as f64 * self.scale))?;
        logits.like(ops.add(l, &scaled)?)
    }

    fn adjusts(&self) -> Option<Adjust<'_>> {
        Some(Adjust::AtInference(&self.logits))
    }
}
