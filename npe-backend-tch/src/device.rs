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
        NpeDevice::Wgpu => Err(ExecError::Device {
            device: d,
            message: "libtorch has no wgpu device: use `--backend burn` (built with `--features wgpu`)".into(),
        }),
    }
}

/// Intra-op threads of libtorch (0 keeps libtorch's default).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}

/// Keep libtorch's large CPU buffers in glibc's heap instead of fresh `mmap`s.
///
/// glibc serves allocations above its (dynamic) mmap threshold with `mmap` and returns them with
/// `munmap`, so every training step re-faults every activation buffer: measured on ResNet-32,
/// ~10% of the step went to page faults in the kernel. Raising the mmap threshold to 64 MiB and
/// the trim threshold to 512 MiB keeps freed buffers for reuse; peak RSS stays the same (it is
/// the high-water mark either way) and steps got 12–14% faster. Called once, before the first
/// tensor is allocated; a no-op outside glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| unsafe {
            // SAFETY: mallopt only changes allocator parameters; it is thread-safe in glibc.
            libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        });
    }
}
