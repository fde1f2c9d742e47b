//! [`guarded`]: how a backend runs one operation, so that every failure names it.

use super::{TResult, TensorError};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    /// How many [`guarded`] calls this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Keep the panic hook quiet for panics that [`guarded`] turns into errors (they are reported
/// with the node and operation instead of a second, raw message); others print as before.
/// The CLI installs it once at start.
pub fn quiet_guarded_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if DEPTH.with(Cell::get) == 0 {
            previous(info);
        }
    }));
}

/// Run a backend's implementation of operation `op` on tensor library `library`: an error it
/// returns names `op`, and a panic of the library (burn reports shape errors by panicking)
/// becomes an error too, instead of ending the process.
pub fn guarded<T>(op: &'static str, library: &str, body: impl FnOnce() -> TResult<T>) -> TResult<T> {
    DEPTH.with(|d| d.set(d.get() + 1));
    let outcome = catch_unwind(AssertUnwindSafe(body));
    DEPTH.with(|d| d.set(d.get() - 1));
    match outcome {
        Ok(result) => result.map_err(|e| e.in_op(op)),
        Err(payload) => Err(TensorError::from_panic(op, library, payload.as_ref())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_panics_name_the_operation() {
        assert_eq!(guarded("add", "lib", || Ok(3)).unwrap(), 3);
        let e = guarded::<()>("matmul", "lib", || Err(TensorError::new("lib: 2x3 @ 4x5"))).unwrap_err();
        assert_eq!((e.op, e.to_string().as_str()), (Some("matmul"), "operation `matmul` failed: lib: 2x3 @ 4x5"));
        let e = guarded::<()>("conv2d", "burn", || panic!("channels differ")).unwrap_err();
        assert_eq!(e.to_string(), "operation `conv2d` failed: burn panicked: channels differ");
    }
}
