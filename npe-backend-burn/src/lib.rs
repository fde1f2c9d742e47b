//! # npe-backend-burn
//!
//! npe's tensor operations on [burn](https://burn.dev) 0.22: CPU through the `flex` backend,
//! GPUs through `cuda` / `wgpu` (Cargo features). Every node, loss and optimiser is written once
//! in `npe-core` over [`npe_core::tensor::Ops`]; this crate implements those operations (and
//! autodiff and devices) and nothing else.
//!
//! On the CPU, convolutions and training-mode batch norm in f32 run on this crate's own kernels
//! (`conv_kernels`, `bn_kernels`: im2col + GEMM, and fused statistics and affine passes) as
//! burn autodiff ops (`flex_conv`, `flex_bn`), and ReLU and the residual add over the thread pool
//! (`flex_eltwise`); burn-flex's were 3–5× slower than PyTorch's there
//! (`results/bench_speed.md`). GPUs and other precisions use burn's.

mod bn_kernels;
mod conv_kernels;
mod device;
mod flex_bn;
mod flex_conv;
mod flex_eltwise;
mod flex_tensor;
mod ops;

/// The burn version this backend uses.
pub use burn;
pub use ops::BurnOps;

use npe_core::backend::{Backend, Device, ExecError};
use npe_core::tensor::Ops;

/// The burn backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct BurnBackend;

impl Backend for BurnBackend {
    fn name(&self) -> &'static str {
        "burn"
    }

    fn devices(&self) -> Vec<String> {
        device::compiled()
    }

    fn ops(&self, device: Device, threads: usize) -> Result<Box<dyn Ops>, ExecError> {
        let threads = device::set_threads(threads);
        let dev = device::resolve(device)?;
        let describe = match device {
            Device::Cpu => format!("burn 0.22 flex (cpu, {threads} threads)"),
            d => format!("burn 0.22 ({d})"),
        };
        Ok(Box::new(BurnOps { device: dev, describe }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    npe_core::conformance_tests!(BurnBackend, 0);

    #[test]
    fn a_device_whose_feature_is_off_names_the_feature() {
        if !cfg!(feature = "wgpu") {
            let err = BurnBackend.ops(Device::Wgpu, 0).err().unwrap().to_string();
            assert!(err.contains("--features wgpu"), "{err}");
        }
        if !cfg!(feature = "cuda") {
            let err = BurnBackend.ops(Device::Cuda(0), 0).err().unwrap().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
