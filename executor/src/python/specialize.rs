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
//!
//! Both lanes use it: the sub-interpreters through the raw C API (they call [`TWINS_SOURCE`]'s
//! function themselves), the main interpreter through [`give_versions_main`].

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// Python source of `twins(f)`: `(function, twin)` pairs for `f` and the functions it reaches
/// directly, each twin made by `MAKE_FUNCTION` from the function's current code.
pub(crate) const TWINS_SOURCE: &std::ffi::CStr = c"
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

/// Whether `object` is a plain Python function that calls cannot be specialized for (version
/// 0), i.e. whether to call `twins` on it. Always false before CPython 3.13.
///
/// # Safety
/// The GIL of `object`'s interpreter must be held and `object` be live.
pub(crate) unsafe fn lacks_version(object: *mut ffi::PyObject) -> bool {
    // SAFETY: per the contract.
    unsafe { version(object) == Some(0) }
}

/// Gives each function of `pairs` (the list `twins` returned) its twin's version, if it still
/// has none.
///
/// # Safety
/// The GIL of the objects' interpreter must be held and `pairs` be a live object.
pub(crate) unsafe fn adopt_versions(pairs: *mut ffi::PyObject) {
    // SAFETY: per the contract; items are checked before use (a list of 2-tuples from
    // `twins`), and borrowed references stay valid while `pairs` lives.
    unsafe {
        if ffi::PyList_Check(pairs) == 0 {
            return;
        }
        for i in 0..ffi::PyList_GET_SIZE(pairs) {
            let pair = ffi::PyList_GET_ITEM(pairs, i);
            if ffi::PyTuple_Check(pair) == 0 || ffi::PyTuple_GET_SIZE(pair) != 2 {
                continue;
            }
            let (reached, twin) = (
                ffi::PyTuple_GET_ITEM(pair, 0),
                ffi::PyTuple_GET_ITEM(pair, 1),
            );
            if let (Some(0), Some(given)) = (version(reached), version(twin)) {
                set_version(reached, given);
            }
        }
    }
}

/// [`lacks_version`] then [`adopt_versions`] for a callable of the main interpreter. A failure
/// only leaves calls unspecialized, so it is ignored.
pub(crate) fn give_versions_main(py: Python<'_>, callable: &Bound<'_, PyAny>) {
    // SAFETY: the token proves the main GIL is held; `callable` is live.
    if !unsafe { lacks_version(callable.as_ptr()) } {
        return;
    }
    static TWINS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let twins = TWINS.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let namespace = pyo3::types::PyDict::new(py);
        py.run(TWINS_SOURCE, Some(&namespace), None)?;
        Ok(namespace.as_any().get_item("twins")?.unbind())
    });
    if let Ok(pairs) = twins.and_then(|twins| twins.bind(py).call1((callable,))) {
        // SAFETY: the main GIL is held; `pairs` is live.
        unsafe { adopt_versions(pairs.as_ptr()) };
    }
}

/// The version of `object` if it is exactly a Python function (CPython 3.13 and later,
/// default build), else `None`.
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

#[cfg(not(all(Py_3_13, not(Py_GIL_DISABLED))))]
unsafe fn version(_object: *mut ffi::PyObject) -> Option<u32> {
    None
}

/// Sets the version of Python function `function`.
///
/// # Safety
/// The GIL must be held and `function` be a live object of exactly `PyFunction_Type`
/// ([`version`] returned `Some`).
#[cfg(all(Py_3_13, not(Py_GIL_DISABLED)))]
unsafe fn set_version(function: *mut ffi::PyObject, version: u32) {
    // SAFETY: per the contract. CPython's MAKE_FUNCTION stores the same value in the same
    // field (through `_PyFunction_SetVersion`, which also files the function in a cache only
    // the tier-2 optimizer reads; a miss there only forgoes an optimization).
    unsafe { (*function.cast::<ffi::PyFunctionObject>()).func_version = version };
}

#[cfg(not(all(Py_3_13, not(Py_GIL_DISABLED))))]
unsafe fn set_version(_function: *mut ffi::PyObject, _version: u32) {}
