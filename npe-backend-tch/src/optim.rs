//! SGD with momentum, PyTorch semantics (`torch.optim.SGD`), updating parameters in place.

use crate::error::Result;
use npe_core::spec::OptimizerSpec;
use tch::Tensor;

/// Update `p` in place from its gradient; `buf` is its momentum buffer. Call under `no_grad`.
pub fn sgd_update(
    p: &mut Tensor,
    grad: &Tensor,
    buf: &mut Option<Tensor>,
    lr: f64,
    opt: &OptimizerSpec,
    decay: bool,
) -> Result<()> {
    let mut d =
        if decay && opt.weight_decay != 0.0 { grad.f_add(&(&*p * opt.weight_decay))? } else { grad.shallow_clone() };
    if opt.momentum != 0.0 {
        match buf {
            None => *buf = Some(d.f_detach_copy()?),
            Some(b) => {
                let _ = b.f_mul_scalar_(opt.momentum)?;
                let _ = b.f_add_(&(&d * (1.0 - opt.dampening)))?;
            }
        }
        let b = buf.as_ref().expect("set above");
        d = if opt.nesterov { d.f_add(&(b * opt.momentum))? } else { b.shallow_clone() };
    }
    let _ = p.f_sub_(&(d * lr))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_torch_sgd_with_momentum_and_decay() {
        // Same numbers as the burn backend's test (torch.optim.SGD, lr 0.1, momentum 0.9, wd 0.01).
        let opt = OptimizerSpec { lr: 0.1, momentum: 0.9, weight_decay: 0.01, ..Default::default() };
        let mut p = Tensor::from_slice(&[1.0f32]);
        let mut buf = None;
        tch::no_grad(|| {
            sgd_update(&mut p, &Tensor::from_slice(&[0.5f32]), &mut buf, 0.1, &opt, true).unwrap();
            assert!((p.double_value(&[0]) - 0.949).abs() < 1e-6);
            sgd_update(&mut p, &Tensor::from_slice(&[0.2f32]), &mut buf, 0.1, &opt, true).unwrap();
            assert!((p.double_value(&[0]) - (0.949 - 0.066849)).abs() < 1e-6);
        });
    }
}
