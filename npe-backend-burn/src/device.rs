//! Mapping npe devices to burn devices, and CPU thread setup. A device whose Cargo feature is
//! off still parses and says which feature to build with.

use burn::tensor::Device;
use npe_core::backend::{Device as NpeDevice, ExecError};

#[cfg_attr(all(feature = "cuda", feature = "wgpu"), allow(dead_code))]
fn not_compiled(device: NpeDevice, feature: &str) -> ExecError {
    ExecError::Device {
        device,
        message: format!("this npe was built without feature `{feature}`\n  hint: rebuild with `--features {feature}`"),
    }
}

/// The burn device for an npe device (without autodiff).
pub fn resolve(d: NpeDevice) -> Result<Device, ExecError> {
    match d {
        NpeDevice::Cpu => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        NpeDevice::Cuda(n) => Ok(Device::cuda(n)),
        #[cfg(not(feature = "cuda"))]
        NpeDevice::Cuda(_) => Err(not_compiled(d, "cuda")),
        #[cfg(feature = "wgpu")]
        NpeDevice::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(not(feature = "wgpu"))]
        NpeDevice::Wgpu => Err(not_compiled(d, "wgpu")),
    }
}

/// The devices this build can select.
pub fn compiled() -> Vec<String> {
    let mut out = vec!["cpu".to_string()];
    if cfg!(feature = "cuda") {
        out.push("cuda:N".into());
    }
    if cfg!(feature = "wgpu") {
        out.push("wgpu".into());
    }
    out
}

/// Size rayon's global pool (flex kernels run on it). Only the first call in a process takes
/// effect; `threads == 0` keeps rayon's default (all cores, or `RAYON_NUM_THREADS`).
pub fn set_threads(threads: usize) -> usize {
    if threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    }
    rayon::current_num_threads()
}
