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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::to_vec;
    use burn::tensor::{Device, TensorData};

    fn t(v: &[f32]) -> Tensor<1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
    }

    /// torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01): p=1, grads 0.5 then 0.2
    /// step 1: d = 0.5 + 0.01 = 0.51, buf = 0.51, p = 1 - 0.051 = 0.949
    /// step 2: d = 0.2 + 0.00949 = 0.20949, buf = 0.9·0.51 + 0.20949 = 0.66849, p = 0.949 - 0.066849
    #[test]
    fn matches_torch_sgd_with_momentum_and_decay() {
        let opt = OptimizerSpec { lr: 0.1, momentum: 0.9, weight_decay: 0.01, ..Default::default() };
        let mut buf = None;
        let p = sgd_update(t(&[1.0]), t(&[0.5]), &mut buf, 0.1, &opt, true);
        assert!((to_vec(&p)[0] - 0.949).abs() < 1e-6);
        let p = sgd_update(p, t(&[0.2]), &mut buf, 0.1, &opt, true);
        assert!((to_vec(&p)[0] - (0.949 - 0.066849)).abs() < 1e-6);
        // No decay for opted-out parameters; Nesterov uses d + m·buf.
        let nesterov = OptimizerSpec { nesterov: true, ..opt };
        let mut buf = None;
        let p = sgd_update(t(&[1.0]), t(&[0.5]), &mut buf, 0.1, &nesterov, false);
        assert!((to_vec(&p)[0] - (1.0 - 0.1 * (0.5 + 0.9 * 0.5))).abs() < 1e-6);
    }
}
