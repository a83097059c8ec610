//! The common case without per-value dispatch: a run of results whose Python type is exactly
//! the one the return type expects (`int` for Int64, `float` for Float64, `bool` for Boolean,
//! `str` for strings) goes straight into the builder. Anything else (`None`, a subclass,
//! another type, an int out of range, a lone surrogate) ends the run and is converted by
//! `Writer::append`, with its checks and its error. For a cheap UDF, dispatching on the kind
//! and on `None` for every value was most of pickleball's own share of the time (see
//! OPERATIONS, "Sizing").

use std::ops::Range;

use pyo3::ffi;

use super::super::extract::bool_of;
use super::super::ffi_util::{Gil, clear_error, utf8};
use super::Kind;

/// Appends items `rows.start..` of `list` for as long as they take the fast path; returns how
/// many it appended. `list` is a live list of at least `rows.end` items.
pub(super) fn append_run(
    kind: &mut Kind,
    py: Gil,
    list: *mut ffi::PyObject,
    rows: Range<usize>,
) -> usize {
    match kind {
        Kind::I64(b) => run(list, rows, |obj| {
            exact_i64(py, obj).map(|v| b.append_value(v))
        }),
        Kind::F64(b) => run(list, rows, |obj| exact_f64(obj).map(|v| b.append_value(v))),
        // `bool` cannot be subclassed: its general rule is the fast one.
        Kind::Bool(b) => run(list, rows, |obj| {
            bool_of(obj).ok().map(|v| b.append_value(v))
        }),
        Kind::Utf8(b) => run(list, rows, |obj| {
            exact_str(py, obj).map(|v| b.append_value(v))
        }),
        Kind::LargeUtf8(b) => run(list, rows, |obj| {
            exact_str(py, obj).map(|v| b.append_value(v))
        }),
        Kind::Utf8View(b) => run(list, rows, |obj| {
            exact_str(py, obj).map(|v| b.append_value(v))
        }),
        _ => 0,
    }
}

/// Calls `append` on each item until it declines one; how many it took.
fn run(
    list: *mut ffi::PyObject,
    rows: Range<usize>,
    mut append: impl FnMut(*mut ffi::PyObject) -> Option<()>,
) -> usize {
    let start = rows.start;
    for i in rows.clone() {
        // SAFETY: the caller guarantees a live list of at least `rows.end` items; the item is
        // borrowed while the list is alive, and nothing here runs Python code.
        let obj = unsafe { ffi::PyList_GET_ITEM(list, i as ffi::Py_ssize_t) };
        if append(obj).is_none() {
            return i - start;
        }
    }
    rows.len()
}

/// An exact `int` that fits `i64`.
fn exact_i64(py: Gil, obj: *mut ffi::PyObject) -> Option<i64> {
    // SAFETY: `obj` is live; the check compares its type.
    if unsafe { ffi::PyLong_CheckExact(obj) } == 0 {
        return None;
    }
    // SAFETY: the token proves the GIL is held; `obj` is an int.
    let v = unsafe { ffi::PyLong_AsLongLong(obj) };
    // SAFETY: the token proves the GIL is held.
    if v == -1 && !unsafe { ffi::PyErr_Occurred() }.is_null() {
        // Out of range: the general path raises it again and reports it.
        clear_error(py);
        return None;
    }
    Some(v)
}

/// An exact `float`.
fn exact_f64(obj: *mut ffi::PyObject) -> Option<f64> {
    // SAFETY: `obj` is live; the value is read only from an exact float.
    unsafe { (ffi::PyFloat_CheckExact(obj) != 0).then(|| ffi::PyFloat_AS_DOUBLE(obj)) }
}

/// An exact `str` that encodes as UTF-8, borrowed from it.
fn exact_str<'a>(py: Gil, obj: *mut ffi::PyObject) -> Option<&'a str> {
    // SAFETY: `obj` is live; the check compares its type.
    if unsafe { ffi::PyUnicode_CheckExact(obj) } == 0 {
        return None;
    }
    let Some(bytes) = utf8(py, obj) else {
        clear_error(py);
        return None;
    };
    // SAFETY: PyUnicode_AsUTF8AndSize returns valid UTF-8 (it fails on lone surrogates).
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}
