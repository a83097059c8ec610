//! Owned references, the GIL token and exception capture over CPython's raw C API, for code
//! that runs inside a sub-interpreter (pyo3's safe API does not support sub-interpreters).
//!
//! Everything here runs on an interpreter's own worker thread while that thread holds the
//! interpreter's GIL; no object made here ever reaches another thread or interpreter.
//! Functions taking a `*mut PyObject` expect a live object of that interpreter, borrowed from
//! a [`PyObj`] or from a container the caller keeps alive (the C API's borrowing rules; these
//! helpers are private to the sub-interpreter lane).

use std::ffi::{CStr, c_char};
use std::marker::PhantomData;
use std::ptr::NonNull;

use pyo3::ffi;

/// Proof that the current thread holds the GIL of the sub-interpreter whose objects it
/// touches. Created only by the worker right after its interpreter's thread state became
/// current (creation, `PyEval_RestoreThread`), and `!Send` so it cannot escape its thread.
#[derive(Clone, Copy)]
pub(super) struct Gil {
    _not_send: PhantomData<*mut ()>,
}

impl Gil {
    /// # Safety
    /// The calling thread must hold the GIL of its sub-interpreter (its thread state is
    /// current) for as long as the token, or anything derived from it, is used.
    pub(super) unsafe fn assume() -> Self {
        Gil {
            _not_send: PhantomData,
        }
    }
}

/// A strong reference to a Python object, released (`Py_DECREF`) on drop.
///
/// `!Send` (it wraps a raw pointer), so it never leaves the thread of the interpreter that
/// made it; the worker drops every `PyObj` while it holds that interpreter's GIL.
#[repr(transparent)]
pub(super) struct PyObj(NonNull<ffi::PyObject>);

impl PyObj {
    /// Takes ownership of a new reference; `None` when `ptr` is null (a Python exception is
    /// then set, by the C API convention).
    pub(super) fn owned(_py: Gil, ptr: *mut ffi::PyObject) -> Option<Self> {
        NonNull::new(ptr).map(PyObj)
    }

    /// A new reference to an object borrowed from elsewhere; `None` when `ptr` is null.
    pub(super) fn borrowed(_py: Gil, ptr: *mut ffi::PyObject) -> Option<Self> {
        let ptr = NonNull::new(ptr)?;
        // SAFETY: the token proves the GIL is held and `ptr` is a live object.
        unsafe { ffi::Py_INCREF(ptr.as_ptr()) };
        Some(PyObj(ptr))
    }

    /// Another strong reference to the same object.
    pub(super) fn clone_ref(&self, _py: Gil) -> Self {
        // SAFETY: the token proves the GIL is held; `self` keeps the object alive.
        unsafe { ffi::Py_INCREF(self.0.as_ptr()) };
        PyObj(self.0)
    }

    /// `None`, as an owned reference.
    pub(super) fn none(py: Gil) -> Self {
        // SAFETY: `Py_None` is a static, immortal object shared by all interpreters.
        Self::borrowed(py, unsafe { ffi::Py_None() }).expect("Py_None is not null")
    }

    /// Gives up ownership of the reference (for C functions that steal it).
    pub(super) fn into_raw(self) -> *mut ffi::PyObject {
        let ptr = self.as_ptr();
        std::mem::forget(self);
        ptr
    }

    /// The object's pointer, still owned by `self`.
    pub(super) fn as_ptr(&self) -> *mut ffi::PyObject {
        self.0.as_ptr()
    }
}

impl Drop for PyObj {
    fn drop(&mut self) {
        // SAFETY: by the type's contract the owning interpreter's GIL is held on this thread.
        unsafe { ffi::Py_DECREF(self.0.as_ptr()) }
    }
}

/// A Python exception captured as text, so that it can leave its interpreter.
#[derive(Debug, Clone, Default)]
pub(super) struct Raised {
    /// The exception class's `__name__`, e.g. `ValueError`.
    pub kind: String,
    /// `str(exception)`.
    pub message: String,
    /// `traceback.format_exception(exception)` joined, or empty if formatting failed.
    pub traceback: String,
    /// Whether the exception is an `ImportError` (or a subclass).
    pub import_error: bool,
}

/// Takes (and clears) the current exception, formatted with `format_exception` (the
/// interpreter's `traceback.format_exception`, when already imported).
pub(super) fn take_exception(py: Gil, format_exception: Option<&PyObj>) -> Raised {
    // SAFETY: the token proves the GIL is held; the call returns a new reference or null.
    let Some(exc) = PyObj::owned(py, unsafe { ffi::PyErr_GetRaisedException() }) else {
        return Raised {
            kind: "SystemError".into(),
            message: "an operation failed without setting a Python exception".into(),
            ..Raised::default()
        };
    };
    // SAFETY: `exc` is a live exception object; Py_TYPE only reads its header.
    let kind_obj = unsafe { ffi::Py_TYPE(exc.as_ptr()) }.cast::<ffi::PyObject>();
    let kind = getattr(py, kind_obj, c"__name__")
        .and_then(|n| text(py, &n))
        .unwrap_or_else(|| "Exception".into());
    // SAFETY: the token proves the GIL is held; both arguments are live objects.
    let import_error =
        unsafe { ffi::PyErr_GivenExceptionMatches(exc.as_ptr(), ffi::PyExc_ImportError) != 0 };
    let message = str_of(py, exc.as_ptr()).unwrap_or_default();
    let traceback = format_exception
        .and_then(|f| call1(py, f.as_ptr(), exc.as_ptr()))
        .and_then(|lines| {
            let empty = PyObj::owned(py, unicode(py, ""))?;
            // SAFETY: the token proves the GIL is held; both arguments are live objects.
            PyObj::owned(py, unsafe {
                ffi::PyUnicode_Join(empty.as_ptr(), lines.as_ptr())
            })
        })
        .and_then(|joined| text(py, &joined))
        .unwrap_or_default();
    clear_error(py);
    Raised {
        kind,
        message,
        traceback,
        import_error,
    }
}

/// Discards any pending exception (after a failure that is reported another way).
pub(super) fn clear_error(_py: Gil) {
    // SAFETY: the token proves the GIL is held.
    unsafe { ffi::PyErr_Clear() }
}

/// `getattr(obj, name)`, or `None` with an exception set.
pub(super) fn getattr(py: Gil, obj: *mut ffi::PyObject, name: &CStr) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held; `obj` is live and `name` NUL-terminated.
    PyObj::owned(py, unsafe {
        ffi::PyObject_GetAttrString(obj, name.as_ptr())
    })
}

/// `import name`, or `None` with an exception set.
pub(super) fn import(py: Gil, name: &CStr) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held; `name` is NUL-terminated.
    PyObj::owned(py, unsafe { ffi::PyImport_ImportModule(name.as_ptr()) })
}

/// A new `str` (a new reference, or null with an exception set).
pub(super) fn unicode(_py: Gil, s: &str) -> *mut ffi::PyObject {
    // ASCII (the common case) is copied straight into a new one-byte str: CPython's UTF-8
    // decoder would check again what `&str` guarantees, at several times the cost.
    if s.is_ascii() {
        // SAFETY: the token proves the GIL is held. A new str of maxchar 127 is compact
        // ASCII with room for `s.len()` one-byte characters, not yet seen by anyone else.
        unsafe {
            let new = ffi::PyUnicode_New(s.len() as ffi::Py_ssize_t, 127);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(s.as_ptr(), ffi::PyUnicode_1BYTE_DATA(new), s.len());
            }
            return new;
        }
    }
    // SAFETY: the token proves the GIL is held; the pointer and length describe valid UTF-8.
    unsafe { ffi::PyUnicode_FromStringAndSize(s.as_ptr().cast::<c_char>(), s.len() as isize) }
}

/// The UTF-8 contents of a `str` object, borrowed from it; `None` (exception set) if it is
/// not a `str` or cannot be encoded (lone surrogates).
pub(super) fn utf8<'a>(_py: Gil, obj: *mut ffi::PyObject) -> Option<&'a [u8]> {
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: the token proves the GIL is held; `obj` is live. The buffer lives as long as
    // the object, which the caller keeps alive while it uses the slice.
    unsafe {
        let data = ffi::PyUnicode_AsUTF8AndSize(obj, &mut len);
        if data.is_null() {
            return None;
        }
        Some(std::slice::from_raw_parts(data.cast::<u8>(), len as usize))
    }
}

/// The contents of a `str` object as an owned `String`.
pub(super) fn text(py: Gil, obj: &PyObj) -> Option<String> {
    utf8(py, obj.as_ptr()).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// `str(obj)` as a `String`.
pub(super) fn str_of(py: Gil, obj: *mut ffi::PyObject) -> Option<String> {
    // SAFETY: the token proves the GIL is held; `obj` is live.
    let s = PyObj::owned(py, unsafe { ffi::PyObject_Str(obj) })?;
    text(py, &s)
}

/// `repr(obj)` shortened for an error message, never failing.
pub(super) fn repr_of(py: Gil, obj: *mut ffi::PyObject) -> String {
    // SAFETY: the token proves the GIL is held; `obj` is live.
    let repr = PyObj::owned(py, unsafe { ffi::PyObject_Repr(obj) }).and_then(|r| text(py, &r));
    let Some(mut repr) = repr else {
        clear_error(py);
        return "<unprintable object>".into();
    };
    const MAX: usize = 200;
    if repr.len() > MAX {
        let mut cut = MAX;
        while !repr.is_char_boundary(cut) {
            cut -= 1;
        }
        repr.truncate(cut);
        repr.push_str("...");
    }
    repr
}

/// The `__name__` of `obj`'s type, for error messages.
pub(super) fn type_name(py: Gil, obj: *mut ffi::PyObject) -> String {
    // SAFETY: `obj` is live; Py_TYPE only reads its header.
    let kind = unsafe { ffi::Py_TYPE(obj) }.cast::<ffi::PyObject>();
    let name = getattr(py, kind, c"__name__").and_then(|n| text(py, &n));
    name.unwrap_or_else(|| {
        clear_error(py);
        "object".into()
    })
}

/// `f(arg)`.
pub(super) fn call1(py: Gil, f: *mut ffi::PyObject, arg: *mut ffi::PyObject) -> Option<PyObj> {
    call(py, f, &[arg])
}

/// `f(*args)` through vectorcall (no argument tuple).
pub(super) fn call(py: Gil, f: *mut ffi::PyObject, args: &[*mut ffi::PyObject]) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held; `f` and the arguments are live, and without
    // PY_VECTORCALL_ARGUMENTS_OFFSET the callee does not write into `args`.
    PyObj::owned(py, unsafe {
        ffi::PyObject_Vectorcall(f, args.as_ptr(), args.len(), std::ptr::null_mut())
    })
}

/// `obj.name()` for an interned method name.
pub(super) fn call_method0(py: Gil, obj: *mut ffi::PyObject, name: &PyObj) -> Option<PyObj> {
    let args = [obj];
    // SAFETY: the token proves the GIL is held; `args[0]` is the live receiver and `name` a
    // `str`, as PyObject_VectorcallMethod requires.
    PyObj::owned(py, unsafe {
        ffi::PyObject_VectorcallMethod(name.as_ptr(), args.as_ptr(), 1, std::ptr::null_mut())
    })
}

/// An interned `str` for attribute names looked up per row.
pub(super) fn intern(py: Gil, name: &CStr) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held; `name` is NUL-terminated.
    PyObj::owned(py, unsafe {
        ffi::PyUnicode_InternFromString(name.as_ptr())
    })
}

/// A new `int` from an `i64`.
pub(super) fn int(py: Gil, v: i64) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held.
    PyObj::owned(py, unsafe { ffi::PyLong_FromLongLong(v) })
}

/// A new `int` from a `u64`.
pub(super) fn uint(py: Gil, v: u64) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held.
    PyObj::owned(py, unsafe { ffi::PyLong_FromUnsignedLongLong(v) })
}

/// A new `float`.
pub(super) fn float(py: Gil, v: f64) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held.
    PyObj::owned(py, unsafe { ffi::PyFloat_FromDouble(v) })
}

/// `True` or `False`.
pub(super) fn boolean(py: Gil, v: bool) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held.
    PyObj::owned(py, unsafe { ffi::PyBool_FromLong(v.into()) })
}

/// Whether `obj` is `None`.
pub(super) fn is_none(obj: *mut ffi::PyObject) -> bool {
    // SAFETY: Py_None is a static object; comparing pointers reads nothing.
    obj == unsafe { ffi::Py_None() }
}

/// A new, empty `dict`.
pub(super) fn new_dict(py: Gil) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held.
    PyObj::owned(py, unsafe { ffi::PyDict_New() })
}

/// `dict[key] = value`; `None` with an exception set (e.g. an unhashable key).
pub(super) fn dict_set(_py: Gil, dict: &PyObj, key: &PyObj, value: &PyObj) -> Option<()> {
    // SAFETY: the token proves the GIL is held; `dict` is a dict and all three are live
    // (SetItem takes its own references).
    let rc = unsafe { ffi::PyDict_SetItem(dict.as_ptr(), key.as_ptr(), value.as_ptr()) };
    (rc == 0).then_some(())
}

/// `obj.name` read as an `i64` (for `int` attributes of datetime objects).
pub(super) fn int_attr(py: Gil, obj: *mut ffi::PyObject, name: &PyObj) -> Option<i64> {
    // SAFETY: the token proves the GIL is held; `obj` is live and `name` a `str`.
    let value = PyObj::owned(py, unsafe { ffi::PyObject_GetAttr(obj, name.as_ptr()) })?;
    // SAFETY: as above; `value` is live.
    let v = unsafe { ffi::PyLong_AsLongLong(value.as_ptr()) };
    // SAFETY: the token proves the GIL is held.
    if v == -1 && !unsafe { ffi::PyErr_Occurred() }.is_null() {
        return None;
    }
    Some(v)
}

/// Whether `obj` is an instance of `class` (exceptions from `__instancecheck__` count as no).
pub(super) fn is_instance(py: Gil, obj: *mut ffi::PyObject, class: &PyObj) -> bool {
    // SAFETY: the token proves the GIL is held; both objects are live.
    match unsafe { ffi::PyObject_IsInstance(obj, class.as_ptr()) } {
        1 => true,
        0 => false,
        _ => {
            clear_error(py);
            false
        }
    }
}
