//! Python objects and calls of the main interpreter that other threads may end: objects that
//! drop safely on any thread, and calls that a cancelled task interrupts.

use std::ffi::{c_long, c_ulong};
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::ffi;

use crate::cancellation::CancelToken;
use pyo3::prelude::*;

unsafe extern "C" {
    /// CPython's identifier of the calling thread (`threading.get_ident()`).
    fn PyThread_get_thread_ident() -> c_ulong;
}

/// Runs `f`, which runs Python on this thread (attached to the main interpreter), so that when
/// the current task's cancellation token fires meanwhile, `KeyboardInterrupt` is raised in the
/// Python code running here (at its next bytecode boundary; a blocking C call is not
/// interrupted).
pub fn interruptible<T>(py: Python<'_>, f: impl FnOnce() -> T) -> T {
    interruptible_by(py, crate::cancellation::current().as_ref(), f)
}

/// [`interruptible`] with an explicit token (`None`: not interruptible).
pub fn interruptible_by<T>(
    _py: Python<'_>,
    token: Option<&Arc<CancelToken>>,
    f: impl FnOnce() -> T,
) -> T {
    let Some(token) = token else {
        return f();
    };
    // SAFETY: the thread is attached (the `Python` token proves it).
    let thread = unsafe { PyThread_get_thread_ident() };
    // Read and cleared only with the GIL held, so the hook cannot interrupt code after `f`.
    let armed = Arc::new(AtomicBool::new(true));
    let hook_armed = Arc::clone(&armed);
    let result = {
        let _hook = token.on_cancel(move || {
            Python::attach(|_| {
                if hook_armed.load(Ordering::Acquire) {
                    // SAFETY: attached to the main interpreter, whose thread `thread` runs
                    // the UDF; the exception class is a static object.
                    unsafe {
                        ffi::PyThreadState_SetAsyncExc(
                            thread as c_long,
                            ffi::PyExc_KeyboardInterrupt,
                        );
                    }
                }
            });
        });
        f()
    };
    armed.store(false, Ordering::Release);
    if token.is_cancelled() {
        // The hook may have fired after `f`'s last check: nothing may reach later code.
        // SAFETY: attached; a null exception clears this thread's pending one.
        unsafe { ffi::PyThreadState_SetAsyncExc(thread as c_long, std::ptr::null_mut()) };
    }
    result
}

/// A main-interpreter object that Rust code may drop on any thread: the reference is released
/// with the thread attached (pyo3 is built with `pyo3_disable_reference_pool`, where dropping
/// a `Py` detached aborts rather than deferring the decref).
#[derive(Debug)]
pub struct MainObject(ManuallyDrop<Py<PyAny>>);

impl MainObject {
    /// Takes ownership of `object`.
    pub fn new(object: Py<PyAny>) -> Self {
        Self(ManuallyDrop::new(object))
    }
}

impl Deref for MainObject {
    type Target = Py<PyAny>;

    fn deref(&self) -> &Py<PyAny> {
        &self.0
    }
}

impl Drop for MainObject {
    fn drop(&mut self) {
        // SAFETY: taken once, here; the field is never used again.
        let object = unsafe { ManuallyDrop::take(&mut self.0) };
        // SAFETY: Py_IsInitialized may be called at any time.
        if unsafe { ffi::Py_IsInitialized() } != 0 {
            Python::attach(move |_| drop(object));
        } else {
            // Python has finalized: its memory is gone, so there is nothing to release.
            std::mem::forget(object);
        }
    }
}
