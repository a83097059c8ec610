//! Lets CPython 3.13 specialize calls to unpickled functions.
//!
//! The adaptive interpreter specializes a call to a Python function (`CALL_PY_EXACT_ARGS`,
//! which pushes the callee's frame inline) only if the function has a nonzero version. In
//! 3.13 only `MAKE_FUNCTION` (a `def` run) gives a function its code's version; a function
//! built by `types.FunctionType`, as cloudpickle rebuilds every function it pickles by value,
//! has version 0 for life, so each row's call takes the generic path (about 120 more machine
//! instructions per call, ~8% of a trivial UDF's row). 3.12 gave versions lazily on first
//! specialization, so there the problem does not arise.
//!
//! The remedy does what `MAKE_FUNCTION` would have done: a throwaway "twin" is made by
//! running a `def` whose code constant is swapped for the function's own code object, and the
//! twin's version (its code's version) is copied into the function. The twin is never called
//! (it has no closure). Only functions at version 0 are touched: the UDF itself and the plain
//! functions it reaches directly through its globals and closure cells (helpers pickled with
//! it). A later change to `__code__`, `__defaults__`, `__kwdefaults__` or `__closure__`
//! resets the version to 0 as usual.

use pyo3::ffi;

use super::ffi_util::{Gil, PyObj, call1, clear_error};

/// Python source of `twins(f)`: `(function, twin)` pairs for `f` and the functions it reaches
/// directly, each twin made by `MAKE_FUNCTION` from the function's current code.
pub(super) const TWINS_SOURCE: &std::ffi::CStr = c"
def twins(f, template=compile('def f(): pass', '<pickleball>', 'exec')):
    function_type, code_type = type(twins), type(template)
    reached = [f]
    reached += [v for v in f.__globals__.values() if type(v) is function_type]
    for cell in f.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if type(value) is function_type:
            reached.append(value)
    pairs = []
    for g in reached:
        code = g.__code__
        consts = tuple(code if type(c) is code_type else c for c in template.co_consts)
        namespace = {'__builtins__': {}}
        exec(template.replace(co_consts=consts), namespace)
        pairs.append((g, namespace['f']))
    return pairs
";

/// Gives `function` (and the functions it reaches directly) the version `MAKE_FUNCTION`
/// would have given it, if it is a plain Python function without one. `twins` is
/// [`TWINS_SOURCE`]'s function. A failure only leaves the calls unspecialized: it is cleared.
pub(super) fn give_versions(py: Gil, twins: &PyObj, function: &PyObj) {
    #[cfg(all(Py_3_13, not(Py_GIL_DISABLED)))]
    {
        // SAFETY: the token proves the GIL is held; `function` is live.
        if unsafe { version(function.as_ptr()) } != Some(0) {
            return;
        }
        let Some(pairs) = call1(py, twins.as_ptr(), function.as_ptr()) else {
            clear_error(py);
            return;
        };
        // SAFETY: the token proves the GIL is held; `twins` returned a list of 2-tuples, each
        // holding references to its items while `pairs` lives.
        unsafe {
            for i in 0..ffi::PyList_Size(pairs.as_ptr()).max(0) {
                let pair = ffi::PyList_GET_ITEM(pairs.as_ptr(), i);
                let (reached, twin) =
                    (ffi::PyTuple_GetItem(pair, 0), ffi::PyTuple_GetItem(pair, 1));
                if let (Some(0), Some(given)) = (version(reached), version(twin)) {
                    set_version(reached, given);
                }
            }
        }
        clear_error(py);
    }
    #[cfg(not(all(Py_3_13, not(Py_GIL_DISABLED))))]
    let _ = (py, twins, function);
}

/// The version of `object` if it is a Python function (exactly), else `None`.
///
/// # Safety
/// The GIL must be held and `object` be live or null.
#[cfg(all(Py_3_13, not(Py_GIL_DISABLED)))]
unsafe fn version(object: *mut ffi::PyObject) -> Option<u32> {
    // SAFETY: per the contract; the struct is CPython's own layout for the version built
    // against (pyo3-ffi follows it per version), read only after the exact type check.
    unsafe {
        if object.is_null() || ffi::Py_TYPE(object) != &raw mut ffi::PyFunction_Type {
            return None;
        }
        Some((*object.cast::<ffi::PyFunctionObject>()).func_version)
    }
}

/// Sets the version of Python function `function`.
///
/// # Safety
/// The GIL must be held and `function` be a live object of exactly `PyFunction_Type`.
#[cfg(all(Py_3_13, not(Py_GIL_DISABLED)))]
unsafe fn set_version(function: *mut ffi::PyObject, version: u32) {
    // SAFETY: per the contract. CPython's MAKE_FUNCTION stores the same value in the same
    // field (through `_PyFunction_SetVersion`, which also files the function in a cache only
    // the tier-2 optimizer reads; a miss there only forgoes an optimization).
    unsafe { (*function.cast::<ffi::PyFunctionObject>()).func_version = version };
}
