//! `pem`: M prior estimation modules on the features, each with the logits' shape. Trained with
//! `one_way_logistic`; their centred output estimates the negative log-prior.

use crate::error::Result;
use crate::backend::ExecError;
use crate::kind::{Cx, Declare, NodeDef, Value, check_classes, defaults, expect_role, first};
use crate::nn::{Conv2d, Linear, Proj, torch_default};
use crate::types::{Category, InferCtx, Init, Input, NodeRef, Role, Sig};
use serde::{Deserialize, Serialize};

fn default_init_std() -> f64 {
    1e-3
}

/// `pem` parameters.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pem {
    /// Features (the same `z` the classifier reads).
    pub input: NodeRef,
    /// Number of PEMs, M ≥ 1. Default 1.
    #[serde(default = "defaults::one_usize")]
    pub count: usize,
    /// Hidden layer widths (ReLU between); empty = linear. Default empty.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Standard deviation of the N(0, std²) weight initialisation; biases start at 0. Default 0.001.
    #[serde(default = "default_init_std")]
    pub init_std: f64,
    /// Stop PEM gradients at the features (the backbone learns from the classifier only). Default false.
    #[serde(default)]
    pub detach: bool,
    /// Apply the optimiser's weight decay to PEM parameters. Default false (decay biases the estimate).
    #[serde(default)]
    pub weight_decay: bool,
    /// Kernel size of dense PEM convolutions (1 or 3); ignored for vector features. Default 1.
    #[serde(default = "defaults::one_usize")]
    pub kernel_size: usize,
    /// Classes; defaults to the data's (must equal it if given).
    #[serde(default)]
    pub classes: Option<usize>,
}

/// One lowered module: hidden layers (ReLU after each), then the output layer.
#[derive(Clone, Debug)]
pub struct Module {
    hidden: Vec<Proj>,
    out: Proj,
}

impl NodeDef for Pem {
    const KIND: &'static str = "pem";
    const CATEGORY: Category = Category::Pem;
    const SUMMARY: &'static str = "M prior estimation modules h_m(z), init N(0, 0.001²)";
    type Lowered = Vec<Module>;

    fn inputs(&self) -> Vec<Input> {
        vec![Input::new("input", &self.input)]
    }

    fn infer(&self, inputs: &[Sig], cx: &InferCtx) -> Result<Sig> {
        expect_role(&inputs[0], &[Role::Features], "input")?;
        if self.count == 0 {
            return Err("`count` must be at least 1".into());
        }
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return Err(format!("`init_std` must be a finite number ≥ 0, got {}", self.init_std).into());
        }
        if self.hidden.contains(&0) {
            return Err("`hidden` widths must be > 0".into());
        }
        if self.kernel_size != 1 && self.kernel_size != 3 {
            return Err(format!("`kernel_size` must be 1 or 3, got {}", self.kernel_size).into());
        }
        let c = check_classes(self.classes, cx)?;
        Ok(Sig { role: Role::Pem { count: self.count }, channels: c, spatial: inputs[0].spatial })
    }

    /// Module m: `{m}.hidden.{j}` and `{m}.out` (just `{m}` without hidden layers); weights
    /// N(0, init_std²), biases 0; no weight decay unless `weight_decay: true`.
    fn lower(&self, d: &mut Declare, inputs: &[Sig], out: &Sig) -> Vec<Module> {
        d.set_decay(self.weight_decay);
        let map = inputs[0].is_map();
        let k = self.kernel_size;
        (0..self.count)
            .map(|m| {
                let mut d = d.scope(&m.to_string());
                let mut inp = inputs[0].channels;
                let mut hidden = vec![];
                for (j, &h) in self.hidden.iter().enumerate() {
                    let name = format!("hidden.{j}");
                    hidden.push(if map {
                        let init = torch_default(inp * k * k);
                        Proj::Conv(Conv2d::new(&mut d, &name, [h, inp, k], init, Some(init)).padding(k / 2))
                    } else {
                        Proj::Linear(Linear::new(&mut d, &name, inp, h, true))
                    });
                    inp = h;
                }
                let name = if self.hidden.is_empty() { "" } else { "out" };
                let (w, b) = (Init::Normal { std: self.init_std }, Some(Init::Zeros));
                let out = if map {
                    let k = if self.hidden.is_empty() { k } else { 1 };
                    Proj::Conv(Conv2d::new(&mut d, name, [out.channels, inp, k], w, b).padding(k / 2))
                } else {
                    Proj::Linear(Linear::with_init(&mut d, name, inp, out.channels, w, b))
                };
                Module { hidden, out }
            })
            .collect()
    }

    fn forward(&self, modules: &Vec<Module>, cx: &mut Cx, inputs: Vec<Value>) -> Result<Value, ExecError> {
        let ops = cx.ops;
        let x = first(inputs)?;
        let map = matches!(x, Value::Map(_));
        let mut z = if map { x.map(ops)? } else { x.flat(ops)? };
        if self.detach {
            z = ops.detach(&z)?;
        }
        let mut outs = Vec::with_capacity(modules.len());
        for m in modules {
            let mut h = z.clone();
            for layer in &m.hidden {
                h = ops.relu(&layer.forward(cx, &h)?)?;
            }
            let o = m.out.forward(cx, &h)?;
            outs.push(if map { Value::Map(o) } else { Value::Vec(o) });
        }
        Ok(Value::Pems(outs))
    }
}
