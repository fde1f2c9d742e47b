//! Mapping npe devices to burn devices, and CPU thread setup.

use crate::error::BurnError;
use burn::tensor::Device;
use npe_core::backend::Device as NpeDevice;

/// The burn device for an npe device (without autodiff).
pub fn resolve(d: NpeDevice) -> Result<Device, BurnError> {
    match d {
        NpeDevice::Cpu => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        NpeDevice::Cuda(n) => Ok(Device::cuda(n)),
        #[cfg(not(feature = "cuda"))]
        NpeDevice::Cuda(n) => Err(BurnError::NotCompiled { feature: "cuda", device: format!("cuda:{n}") }),
    }
}

/// Size rayon's global pool (flex kernels run on it). Only the first call in a process takes
/// effect; `threads == 0` keeps rayon's default (all cores, or `RAYON_NUM_THREADS`).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    }
}
