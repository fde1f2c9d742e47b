//! The C++ shim (`csrc/shim.cpp`): libtorch calls tch does not bind. C++ exceptions come back as
//! errors, never as aborts.

use npe_core::tensor::{TResult, TensorError};
use std::ffi::{CStr, c_char, c_int, c_void};

unsafe extern "C" {
    fn npe_autocast(cuda: c_int, enabled: c_int, half: c_int, err: *mut *mut c_char) -> c_int;
    fn npe_channels_last(tensor: *mut c_void, out: *mut *mut c_void, err: *mut *mut c_char) -> c_int;
}

/// The message of a failed call (and free it).
pub(crate) fn message(err: *mut c_char) -> String {
    if err.is_null() {
        return "libtorch failed without a message".into();
    }
    // SAFETY: the shim returns a NUL-terminated string from malloc, ours to free.
    let s = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    unsafe { libc::free(err.cast()) };
    without_cpp_frames(&s)
}

/// A libtorch message without the C++ stack trace c10 appends ("Exception raised from …",
/// "frame #0: …"): users get the message, `NPE_LOG=debug` the whole text.
pub(crate) fn without_cpp_frames(raw: &str) -> String {
    let mut kept = vec![];
    let mut dropped = 0;
    for line in raw.lines() {
        let t = line.trim_start();
        if t.starts_with("Exception raised from ") || t.starts_with("frame #") {
            dropped += 1;
        } else if dropped == 0 || !t.is_empty() {
            kept.push(line);
        }
    }
    if dropped > 0 {
        tracing::debug!("libtorch's full message:\n{raw}");
    }
    kept.join("\n").trim_end().to_string()
}

/// Enter (`Some(half)`) or leave (`None`) an autocast region on the CPU or CUDA: convolutions and
/// matrix products run in bfloat16 (`half == false`) or float16, on float32 parameters.
pub fn autocast(cuda: bool, dtype: Option<bool>) -> TResult<()> {
    let mut err = std::ptr::null_mut();
    let (on, half) = (dtype.is_some() as c_int, dtype.unwrap_or(false) as c_int);
    // SAFETY: plain values in, an error string out.
    match unsafe { npe_autocast(cuda as c_int, on, half, &mut err) } {
        0 => Ok(()),
        _ => Err(TensorError::new(format!("libtorch autocast: {}", message(err)))),
    }
}

/// `t` in channels-last memory format (a 4-d tensor; the values and autograd history are kept).
pub fn channels_last(t: &tch::Tensor) -> TResult<tch::Tensor> {
    let mut out = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: tch's tensor pointer is an `at::Tensor*`; the shim returns a new `at::Tensor*`
    // that `from_ptr` takes ownership of.
    match unsafe { npe_channels_last(t.as_ptr() as *mut c_void, &mut out, &mut err) } {
        0 => Ok(unsafe { tch::Tensor::from_ptr(out.cast()) }),
        _ => Err(TensorError::new(format!("libtorch: {}", message(err)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpp_stack_frames_are_kept_out_of_the_message() {
        let raw = "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer\nException raised from recvFromRank at ../c10d/ProcessGroupGloo.cpp:55 (most recent call first):\nframe #0: c10::Error::Error() + 0x9 (0x7f in libc10.so)\nframe #1: <unknown function> + 0x5 (0x7f in libtorch_cpu.so)\n";
        assert_eq!(
            without_cpp_frames(raw),
            "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer"
        );
        assert_eq!(without_cpp_frames("shape mismatch\n  hint: x"), "shape mismatch\n  hint: x");
    }

    #[test]
    fn channels_last_keeps_values_and_changes_strides() {
        let x = tch::Tensor::arange(2 * 3 * 4 * 5, (tch::Kind::Float, tch::Device::Cpu)).reshape([2, 3, 4, 5]);
        let y = channels_last(&x).unwrap();
        assert_eq!(y.stride(), vec![60, 1, 15, 3]);
        assert_eq!(Vec::<f32>::try_from(&y.flatten(0, -1)).unwrap(), Vec::<f32>::try_from(&x.flatten(0, -1)).unwrap());
        assert!(channels_last(&tch::Tensor::zeros([3], (tch::Kind::Float, tch::Device::Cpu))).is_err(), "needs 4-d");
    }

    #[test]
    fn autocast_runs_matmuls_in_bfloat16_on_the_cpu_and_can_be_left() {
        let a = tch::Tensor::ones([4, 4], (tch::Kind::Float, tch::Device::Cpu));
        autocast(false, Some(false)).unwrap();
        let inside = a.matmul(&a).kind();
        autocast(false, None).unwrap();
        let outside = a.matmul(&a).kind();
        assert_eq!((inside, outside), (tch::Kind::BFloat16, tch::Kind::Float));
    }
}
