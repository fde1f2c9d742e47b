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

/// Size rayon's global pool (flex kernels run on it); the threads it will have. Only the first
/// sizing in a process takes effect, so `threads == 0` (rayon's default: all cores, or
/// `RAYON_NUM_THREADS`) leaves the pool unstarted: asking rayon its size would start it, and
/// a later `train.threads: 1` could then no longer take effect (the report said 2 threads).
pub fn set_threads(threads: usize) -> usize {
    if threads == 0 {
        let env = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n > 0);
        return env.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    if rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().is_err()
        && rayon::current_num_threads() != threads
    {
        tracing::warn!(
            "burn's thread pool was started with {} threads before `train.threads: {threads}` was read; it keeps them",
            rayon::current_num_threads()
        );
    }
    rayon::current_num_threads()
}
