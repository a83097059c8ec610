//! Python containers into nested writers: lists and tuples for lists, dicts for structs,
//! dicts (or lists of pairs) for maps. Items are held by our own references while they are
//! converted, in case a conversion runs Python code that mutates the container.

use pyo3::ffi;

use super::super::context::Context;
use super::super::extract::Reason;
use super::super::ffi_util::{Gil, PyObj};
use super::{Mismatch, Writer};

/// Whether a Python exception is pending (and clears it).
pub(super) fn extract_failed(py: Gil) -> bool {
    // SAFETY: the token proves the GIL is held.
    let pending = !unsafe { ffi::PyErr_Occurred() }.is_null();
    if pending {
        super::super::ffi_util::clear_error(py);
    }
    pending
}

/// Appends the items of a list or tuple to `child`; `Ok(None)` if `obj` is neither or (with
/// `size`) has another length. Each item is held by our own reference while converted.
pub(super) fn append_items(
    py: Gil,
    ctx: &Context,
    child: &mut Writer,
    obj: *mut ffi::PyObject,
    size: Option<usize>,
) -> Result<Option<usize>, Mismatch> {
    // SAFETY: `obj` is live; the checks read its type.
    let is_list = unsafe { ffi::PyList_Check(obj) } != 0;
    // SAFETY: as above.
    if !is_list && unsafe { ffi::PyTuple_Check(obj) } == 0 {
        return Ok(None);
    }
    // SAFETY: the token proves the GIL is held; `obj` is the list or tuple just checked.
    let len = unsafe {
        if is_list {
            ffi::PyList_Size(obj)
        } else {
            ffi::PyTuple_Size(obj)
        }
    } as usize;
    if size.is_some_and(|n| n != len) {
        return Ok(None);
    }
    for i in 0..len as ffi::Py_ssize_t {
        // SAFETY: as above; GetItem checks the index (the list may have shrunk while
        // converting, if a conversion ran Python code) and returns a borrowed item or null.
        let item = unsafe {
            if is_list {
                ffi::PyList_GetItem(obj, i)
            } else {
                ffi::PyTuple_GetItem(obj, i)
            }
        };
        let Some(item) = PyObj::borrowed(py, item) else {
            extract_failed(py);
            return Ok(None);
        };
        child.append(py, ctx, item.as_ptr())?;
    }
    Ok(Some(len))
}

/// Appends a dict's values to the struct's field writers (missing keys are nulls, other
/// keys are ignored, as pyarrow does); `Ok(Err(_))` if `obj` is not a dict.
pub(super) fn append_fields(
    py: Gil,
    ctx: &Context,
    names: &[PyObj],
    children: &mut [Writer],
    obj: *mut ffi::PyObject,
) -> Result<Result<(), Reason>, Mismatch> {
    // SAFETY: `obj` is live; the check reads its type.
    if unsafe { ffi::PyDict_Check(obj) } == 0 {
        return Ok(Err("expected a dict"));
    }
    for (name, child) in names.iter().zip(children.iter_mut()) {
        // SAFETY: the token proves the GIL is held; `obj` is a live dict and `name` a `str`
        // (hashing it cannot fail). The item is borrowed: take our own reference.
        let item = unsafe { ffi::PyDict_GetItemWithError(obj, name.as_ptr()) };
        match PyObj::borrowed(py, item) {
            Some(item) => child.append(py, ctx, item.as_ptr())?,
            None if extract_failed(py) => return Ok(Err("its field lookup failed")),
            None => child.append_null(),
        }
    }
    Ok(Ok(()))
}

/// The `(key, value)` pairs of a dict, or of a list of 2-tuples (pyarrow's map form).
pub(super) fn dict_items(py: Gil, obj: *mut ffi::PyObject) -> Option<Vec<(PyObj, PyObj)>> {
    let mut pairs = Vec::new();
    // SAFETY: the token proves the GIL is held; `obj` is live and each
    // accessor is used on the type just checked; borrowed items get our own references
    // before anything else runs.
    unsafe {
        if ffi::PyDict_Check(obj) != 0 {
            let mut pos: ffi::Py_ssize_t = 0;
            let mut key = std::ptr::null_mut();
            let mut value = std::ptr::null_mut();
            while ffi::PyDict_Next(obj, &mut pos, &mut key, &mut value) != 0 {
                pairs.push((PyObj::borrowed(py, key)?, PyObj::borrowed(py, value)?));
            }
        } else if ffi::PyList_Check(obj) != 0 {
            for i in 0..ffi::PyList_Size(obj) {
                let pair = PyObj::borrowed(py, ffi::PyList_GetItem(obj, i))?;
                if ffi::PyTuple_Check(pair.as_ptr()) == 0 || ffi::PyTuple_Size(pair.as_ptr()) != 2 {
                    return None;
                }
                let key = PyObj::borrowed(py, ffi::PyTuple_GetItem(pair.as_ptr(), 0))?;
                let value = PyObj::borrowed(py, ffi::PyTuple_GetItem(pair.as_ptr(), 1))?;
                pairs.push((key, value));
            }
        } else {
            return None;
        }
    }
    Some(pairs)
}
