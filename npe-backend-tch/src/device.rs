//! Mapping npe devices to libtorch devices, and CPU thread setup.

use npe_core::backend::{Device as NpeDevice, ExecError};
use tch::Device;

/// The libtorch device for an npe device, checking CUDA is there.
pub fn resolve(d: NpeDevice) -> Result<Device, ExecError> {
    match d {
        NpeDevice::Cpu => Ok(Device::Cpu),
        NpeDevice::Cuda(n) => {
            if !tch::Cuda::is_available() {
                return Err(ExecError::Device {
                    device: d,
                    message: "libtorch sees no CUDA device (a CPU machine, or a CPU-only libtorch): install the full `torch==2.13.0` wheel with `NPE_TORCH_FULL=1 scripts/libtorch.sh` on a GPU machine".into(),
                });
            }
            let count = tch::Cuda::device_count() as usize;
            if n >= count {
                return Err(ExecError::Device {
                    device: d,
                    message: format!("only {count} CUDA device(s) are visible"),
                });
            }
            Ok(Device::Cuda(n))
        }
    }
}

/// Intra-op threads of libtorch (0 keeps libtorch's default).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}
