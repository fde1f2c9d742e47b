//! SGD with momentum, PyTorch semantics (`torch.optim.SGD`): weight decay added to the
//! gradient, momentum buffer initialised to the first gradient, dampening (default 0), Nesterov.
//! burn's own SGD defaults to dampening 0.1, so we implement the update here.

use burn::tensor::Tensor;
use npe_core::spec::OptimizerSpec;

/// One parameter's update; returns the new value. `buf` is its momentum buffer.
pub fn sgd_update(
    p: Tensor<1>,
    grad: Tensor<1>,
    buf: &mut Option<Tensor<1>>,
    lr: f64,
    opt: &OptimizerSpec,
    decay: bool,
) -> Tensor<1> {
    let mut d = grad;
    if decay && opt.weight_decay != 0.0 {
        d = d + p.clone() * opt.weight_decay;
    }
    if opt.momentum != 0.0 {
        let b = match buf.take() {
            None => d.clone(),
            Some(b) => b * opt.momentum + d.clone() * (1.0 - opt.dampening),
        };
        d = if opt.nesterov { d + b.clone() * opt.momentum } else { b.clone() };
        *buf = Some(b);
    }
    p - d * lr
}
