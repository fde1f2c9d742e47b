//! # npe-backend-tch
//!
//! npe's tensor operations on libtorch 2.13 through [tch](https://github.com/LaurentMazare/tch-rs)
//! 0.26, on CPU or CUDA. Every node, loss and optimiser is written once in `npe-core` over
//! [`npe_core::tensor::Ops`]; this crate implements those operations and nothing else.

mod device;
mod dist;
mod dist_ops;
mod ops;
mod shim;

pub use ops::TchOps;
/// The tch version this backend uses.
pub use tch;

use npe_core::backend::{Backend, Device, ExecError};
use npe_core::tensor::Ops;

/// The libtorch backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct TchBackend;

impl Backend for TchBackend {
    fn name(&self) -> &'static str {
        "tch"
    }

    fn devices(&self) -> Vec<String> {
        let cuda = if tch::Cuda::is_available() { tch::Cuda::device_count() as usize } else { 0 };
        std::iter::once("cpu".to_string()).chain((0..cuda).map(|i| format!("cuda:{i}"))).collect()
    }

    fn ops(&self, device: Device, threads: usize) -> Result<Box<dyn Ops>, ExecError> {
        device::tune_allocator();
        device::set_threads(threads);
        let dev = device::resolve(device)?;
        let describe = match device {
            Device::Cpu => format!("tch 0.26 / libtorch 2.13 (cpu, {} threads)", tch::get_num_threads()),
            d => format!("tch 0.26 / libtorch 2.13 ({d})"),
        };
        Ok(Box::new(TchOps { device: dev, describe, group: Default::default() }))
    }

    fn collectives(&self) -> Option<String> {
        Some(format!("libtorch c10d: {}", dist::process_groups()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    npe_core::conformance_tests!(TchBackend, 1);

    #[test]
    fn asking_for_wgpu_says_which_backend_has_it() {
        let err = TchBackend.ops(Device::Wgpu, 1).err().unwrap().to_string();
        assert!(err.contains("--backend burn"), "{err}");
    }
}
