//! libtorch's c10d for the core's [`DistOps`]: a TCPStore rendezvous and a Gloo process group
//! (CPU) or an NCCL one (CUDA, in a `cuda` build against a CUDA libtorch), through the C++ shim
//! (`csrc/dist.cpp`). Every collective is c10d's.

use crate::shim::message;
use npe_core::dist::World;
use npe_core::tensor::{SharedStore, TResult, TensorError};
use std::ffi::{CString, c_char, c_int, c_void};
use std::time::Duration;

unsafe extern "C" {
    fn npe_group_new(
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        serve: c_int,
        cuda: c_int,
        prefix: *const c_char,
        timeout_ms: c_int,
        out: *mut *mut c_void,
        err: *mut *mut c_char,
    ) -> c_int;
    fn npe_group_free(group: *mut c_void);
    fn npe_has_nccl() -> c_int;
    fn npe_c10_log_level(level: c_int);
    fn npe_group_all_reduce(group: *mut c_void, tensor: *mut c_void, err: *mut *mut c_char) -> c_int;
    fn npe_group_broadcast(group: *mut c_void, tensor: *mut c_void, root: c_int, err: *mut *mut c_char) -> c_int;
    fn npe_group_all_reduce_autograd(
        group: *mut c_void,
        tensor: *mut c_void,
        out: *mut *mut c_void,
        err: *mut *mut c_char,
    ) -> c_int;
    fn npe_group_store_set(
        group: *mut c_void,
        key: *const c_char,
        value: *const u8,
        len: usize,
        err: *mut *mut c_char,
    ) -> c_int;
    fn npe_group_store_check(
        group: *mut c_void,
        key: *const c_char,
        present: *mut c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn npe_group_store_get(
        group: *mut c_void,
        key: *const c_char,
        timeout_ms: c_int,
        out: *mut *mut u8,
        len: *mut usize,
        err: *mut *mut c_char,
    ) -> c_int;
}

/// A joined process group (c10d's TCPStore and ProcessGroupGloo), freed on drop.
pub struct Group {
    ptr: *mut c_void,
    /// The run's collective timeout, which bounds every store call made through [`DistOps`].
    pub(crate) timeout: Duration,
}

// SAFETY: c10d's store and process group are used from any thread in PyTorch: TCPStore holds a
// mutex over each client call. npe calls the process group from one thread, and the store from
// that thread and rank 0's heartbeat thread (`set` only).
unsafe impl Send for Group {}
unsafe impl Sync for Group {}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: made by npe_group_new, freed once.
        unsafe { npe_group_free(self.ptr) }
    }
}

fn check(code: c_int, err: *mut c_char) -> TResult<()> {
    if code == 0 { Ok(()) } else { Err(TensorError::new(format!("c10d: {}", message(err)))) }
}

fn cstr(s: &str) -> TResult<CString> {
    CString::new(s).map_err(|_| TensorError::new(format!("{s:?} contains a NUL byte")))
}

fn millis(d: Duration) -> c_int {
    d.as_millis().clamp(1, c_int::MAX as u128) as c_int
}

impl Group {
    /// Join `world` (blocks until every rank has joined, or `world.timeout`) with Gloo, or NCCL
    /// for CUDA tensors (`cuda`).
    pub fn join(world: &World, cuda: bool) -> TResult<Group> {
        // npe names failed ranks itself; c10's warnings (with C++ stack frames) only when asked.
        let debug = std::env::var("NPE_LOG").is_ok_and(|v| v.contains("debug") || v.contains("trace"));
        // SAFETY: sets an int flag.
        unsafe { npe_c10_log_level(if debug { 1 } else { 3 }) };
        let (host, prefix) = (cstr(&world.master_addr)?, cstr(&world.prefix)?);
        let (mut out, mut err) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: strings live across the call; out and err are written on return.
        let code = unsafe {
            npe_group_new(
                host.as_ptr(),
                world.master_port as c_int,
                world.rank as c_int,
                world.size as c_int,
                world.serve_store as c_int,
                cuda as c_int,
                prefix.as_ptr(),
                millis(world.timeout),
                &mut out,
                &mut err,
            )
        };
        check(code, err)?;
        Ok(Group { ptr: out, timeout: world.timeout })
    }

    /// In-place sum over ranks.
    pub fn all_reduce(&self, t: &tch::Tensor) -> TResult<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: tch's tensor pointer is an `at::Tensor*` that outlives the call.
        check(unsafe { npe_group_all_reduce(self.ptr, t.as_ptr() as *mut c_void, &mut err) }, err)
    }

    /// In-place copy of `root`'s tensor to every rank.
    pub fn broadcast(&self, t: &tch::Tensor, root: usize) -> TResult<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: as in all_reduce.
        check(unsafe { npe_group_broadcast(self.ptr, t.as_ptr() as *mut c_void, root as c_int, &mut err) }, err)
    }

    /// The differentiable sum over ranks.
    pub fn all_reduce_autograd(&self, t: &tch::Tensor) -> TResult<tch::Tensor> {
        let (mut out, mut err) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: as in all_reduce; `out` is a new `at::Tensor*` that from_ptr takes over.
        check(unsafe { npe_group_all_reduce_autograd(self.ptr, t.as_ptr() as *mut c_void, &mut out, &mut err) }, err)?;
        Ok(unsafe { tch::Tensor::from_ptr(out.cast()) })
    }

    /// Set `key` in the store.
    pub fn set(&self, key: &str, value: &[u8]) -> TResult<()> {
        let (key, mut err) = (cstr(key)?, std::ptr::null_mut());
        // SAFETY: key and value outlive the call.
        check(unsafe { npe_group_store_set(self.ptr, key.as_ptr(), value.as_ptr(), value.len(), &mut err) }, err)
    }

    /// Whether `key` is set.
    pub fn check(&self, key: &str) -> TResult<bool> {
        let (key, mut present, mut err) = (cstr(key)?, 0, std::ptr::null_mut());
        // SAFETY: key outlives the call.
        check(unsafe { npe_group_store_check(self.ptr, key.as_ptr(), &mut present, &mut err) }, err)?;
        Ok(present != 0)
    }

    /// `key`'s value, waiting up to `timeout`.
    pub fn get(&self, key: &str, timeout: Duration) -> TResult<Vec<u8>> {
        let (key, mut err) = (cstr(key)?, std::ptr::null_mut());
        let (mut out, mut len) = (std::ptr::null_mut(), 0usize);
        // SAFETY: key outlives the call; out is a malloc'd buffer of len bytes, freed here.
        check(
            unsafe { npe_group_store_get(self.ptr, key.as_ptr(), millis(timeout), &mut out, &mut len, &mut err) },
            err,
        )?;
        let v = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
        unsafe { libc::free(out.cast()) };
        Ok(v)
    }
}

/// c10d's process groups this build has, for `npe kinds`.
pub fn process_groups() -> String {
    // SAFETY: no arguments, no state.
    let nccl = unsafe { npe_has_nccl() } != 0;
    format!(
        "Gloo (cpu){}",
        if nccl { ", NCCL (cuda)" } else { "; NCCL not compiled (a cuda build against a CUDA libtorch)" }
    )
}

impl SharedStore for Group {
    fn set(&self, key: &str, value: &[u8]) -> TResult<()> {
        Group::set(self, key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    fn world(rank: usize, size: usize, port: u16) -> World {
        World {
            rank,
            size,
            local_rank: rank,
            master_addr: "127.0.0.1".into(),
            master_port: port,
            serve_store: rank == 0,
            prefix: "/test/".into(),
            timeout: Duration::from_secs(20),
        }
    }

    /// Two ranks as two threads of this process, each with its own group.
    fn on_two_ranks<R: Send + 'static>(f: impl Fn(usize, Group) -> R + Send + Sync + Copy + 'static) -> Vec<R> {
        let port = free_port();
        let handles: Vec<_> =
            (0..2).map(|r| std::thread::spawn(move || f(r, Group::join(&world(r, 2, port), false).unwrap()))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn gloo_sums_broadcasts_and_differentiates_over_two_ranks() {
        let out = on_two_ranks(|r, g| {
            let opts = (Kind::Float, Device::Cpu);
            let x = tch::Tensor::from_slice(&[1.0f32 + r as f32, 10.0]);
            g.all_reduce(&x).unwrap();
            let b = tch::Tensor::from_slice(&[r as f32 + 5.0; 3]);
            g.broadcast(&b, 0).unwrap();
            let leaf = tch::Tensor::ones([2], opts).set_requires_grad(true);
            let y = g.all_reduce_autograd(&(&leaf * (r as f64 + 1.0))).unwrap();
            y.sum(Kind::Float).backward();
            let (sum, bcast) = (Vec::<f32>::try_from(&x).unwrap(), Vec::<f32>::try_from(&b).unwrap());
            (sum, bcast, Vec::<f32>::try_from(&y.detach()).unwrap(), Vec::<f32>::try_from(&leaf.grad()).unwrap())
        });
        for (r, (sum, bcast, y, grad)) in out.into_iter().enumerate() {
            assert_eq!(sum, vec![3.0, 20.0], "rank {r}");
            assert_eq!(bcast, vec![5.0; 3], "rank 0's values everywhere");
            assert_eq!(y, vec![3.0, 3.0], "1·x + 2·x");

            assert_eq!(grad, vec![2.0 * (r as f32 + 1.0); 2], "rank {r}");
        }
    }

    #[test]
    fn the_store_carries_values_between_ranks() {
        let out = on_two_ranks(|r, g| {
            g.set(&format!("k{r}"), format!("from {r}").as_bytes()).unwrap();
            let other = g.get(&format!("k{}", 1 - r), Duration::from_secs(10)).unwrap();
            let missing = g.check("never").unwrap();
            let waited = g.get("never", Duration::from_millis(200)).is_err();
            (String::from_utf8(other).unwrap(), missing, waited)
        });
        assert_eq!(out[0], ("from 1".to_string(), false, true));
        assert_eq!(out[1].0, "from 0");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_tensors_need_a_build_with_nccl() {
        let Err(e) = Group::join(&world(0, 1, free_port()), true) else { panic!("joined NCCL without it") };
        assert!(e.message.contains("without NCCL") && e.message.contains("--features cuda"), "{e}");
    }

    /// A `cuda` build against a CUDA libtorch has NCCL: on a GPU a one-rank group sums CUDA
    /// tensors; without one, joining is an error, not an abort.
    #[cfg(feature = "cuda")]
    #[test]
    fn nccl_joins_on_a_gpu_and_says_why_not_without_one() {
        match Group::join(&world(0, 1, free_port()), true) {
            Ok(g) if tch::Cuda::is_available() => {
                let x = tch::Tensor::from_slice(&[1.5f32, 2.0]).to_device(Device::Cuda(0));
                g.all_reduce(&x).unwrap();
                assert_eq!(Vec::<f32>::try_from(&x.to_device(Device::Cpu)).unwrap(), vec![1.5, 2.0]);
            }
            Ok(_) => panic!("NCCL joined without a GPU"),
            Err(e) if !tch::Cuda::is_available() => {
                eprintln!("without a GPU: {e}");
                assert!(e.message.contains("c10d:"), "{e}")
            }
            Err(e) => panic!("NCCL failed on a GPU: {e}"),
        }
    }

    #[test]
    fn a_port_in_use_is_an_error_not_an_abort() {
        let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let Err(e) = Group::join(&world(0, 2, port), false) else { panic!("joined on a busy port") };
        assert!(e.message.to_lowercase().contains("in use") || e.message.contains("EADDRINUSE"), "{e}");
    }
}
