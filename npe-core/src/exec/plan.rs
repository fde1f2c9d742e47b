//! Lowering: the IR's nodes in execution order, each with its parameters declared and its
//! inputs resolved to earlier steps, so a pass never looks a node up by name.

use crate::backend::ExecError;
use crate::ir::Ir;
use crate::kind::{Cx, Declare, Module, Value};
use crate::tensor::Tensor;
use crate::types::{Category, ParamSpec, Sig};
use std::collections::HashMap;

/// Where a step's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    /// The batch's images.
    Data,
    /// An earlier step's output.
    Step(usize),
}

struct Step {
    name: String,
    category: Category,
    module: Box<dyn Module>,
    inputs: Vec<Src>,
    frozen: bool,
}

/// A pipeline ready to run: steps in execution order and the parameters they declared.
pub struct Plan {
    /// Every parameter and buffer, in declaration (layout) order.
    pub specs: Vec<ParamSpec>,
    steps: Vec<Step>,
    by_name: HashMap<String, usize>,
}

impl Plan {
    /// Lower every node of `ir` but the evaluators (computed on the host).
    pub fn lower(ir: &Ir) -> Plan {
        let mut specs = vec![];
        let mut steps: Vec<Step> = vec![];
        let mut by_name = HashMap::new();
        for (node, op) in ir.ops() {
            if op.category() == Category::Evaluator {
                continue;
            }
            let mut srcs = vec![];
            let mut sigs: Vec<Sig> = vec![];
            for input in op.inputs() {
                let src = by_name.get(&input.source.node).map_or(Src::Data, |&i| Src::Step(i));
                srcs.push(src);
                sigs.push(ir.node(&input.source.node).expect("validated input").sig);
            }
            let module = op.lower(&mut Declare::new(&node.name, &mut specs), &sigs, &node.sig);
            by_name.insert(node.name.clone(), steps.len());
            steps.push(Step {
                name: node.name.clone(),
                category: op.category(),
                module,
                inputs: srcs,
                frozen: ir.train.freeze.contains(&node.name),
            });
        }
        Plan { specs, steps, by_name }
    }

    /// The step computing node `name`.
    pub fn step(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Names of the loss steps, and their indices, in execution order.
    pub fn losses(&self) -> Vec<(usize, String)> {
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.category == Category::Loss)
            .map(|(i, s)| (i, s.name.clone()))
            .collect()
    }

    /// The steps `targets` need (themselves and their ancestors), in execution order.
    pub fn needed(&self, targets: &[usize]) -> Vec<usize> {
        let mut want = vec![false; self.steps.len()];
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut want[i], true) {
                stack.extend(self.steps[i].inputs.iter().filter_map(|s| match s {
                    Src::Step(j) => Some(*j),
                    Src::Data => None,
                }));
            }
        }
        (0..self.steps.len()).filter(|&i| want[i]).collect()
    }

    /// Run `steps` (from [`needed`](Self::needed)) on `images`; every step's output by index.
    pub fn run(&self, cx: &mut Cx, images: Tensor, steps: &[usize]) -> Result<Vec<Option<Value>>, ExecError> {
        let data = Value::Map(images);
        let mut out: Vec<Option<Value>> = vec![None; self.steps.len()];
        for &i in steps {
            let step = &self.steps[i];
            let inputs = step
                .inputs
                .iter()
                .map(|s| match s {
                    Src::Data => Ok(data.clone()),
                    Src::Step(j) => out[*j]
                        .clone()
                        .ok_or_else(|| ExecError::Internal(format!("input of `{}` was not computed", step.name))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            cx.set_step(i, step.frozen);
            let value = step.module.forward(cx, inputs).map_err(|e| e.in_node(&step.name))?;
            out[i] = Some(value);
        }
        cx.set_step(0, false);
        Ok(out)
    }
}
