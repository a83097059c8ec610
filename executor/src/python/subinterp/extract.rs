//! Scalar values out of Python objects, for the return-value writers: which Python types
//! each Arrow type accepts, and the exact conversion (ints range-checked, decimals rescaled
//! without loss, aware datetimes converted to the UTC instant).
//!
//! Accepted (as pyarrow does, except that floats are never accepted for ints): `int` (not
//! `bool`) for integers; `float` or `int` (not `bool`) for floats; `bool` for booleans; `str`
//! for strings; `bytes`/`bytearray` for binaries; `date` (or `datetime`, truncated) for dates;
//! `datetime` for timestamps; `time` for times; `timedelta` for durations; `Decimal` or `int`
//! for decimals.

use datafusion::arrow::datatypes::TimeUnit;
use pyo3::ffi;

use super::context::Context;
use super::ffi_util::{
    Gil, PyObj, call_method0, call1, clear_error, int_attr, is_instance, is_none,
};
use super::temporal::{DAY_US, days_from_civil};

/// Why a value does not fit; the writer adds the value's repr and the expected type.
pub(super) type Reason = &'static str;

/// Whether a Python exception is pending; clears it (its text is replaced by a `Reason`).
fn failed(py: Gil) -> bool {
    // SAFETY: the token proves the GIL is held.
    let pending = !unsafe { ffi::PyErr_Occurred() }.is_null();
    if pending {
        clear_error(py);
    }
    pending
}

/// Whether `obj` is an `int` and not a `bool`.
fn is_int(obj: *mut ffi::PyObject) -> bool {
    // SAFETY: `obj` is live; both checks only read its type's flags.
    unsafe { ffi::PyLong_Check(obj) != 0 && ffi::PyBool_Check(obj) == 0 }
}

/// A Python `int` as `i64`.
pub(super) fn i64_of(py: Gil, obj: *mut ffi::PyObject) -> Result<i64, Reason> {
    if !is_int(obj) {
        return Err("expected an int");
    }
    // SAFETY: the token proves the GIL is held; `obj` is a live int.
    let v = unsafe { ffi::PyLong_AsLongLong(obj) };
    if v == -1 && failed(py) {
        return Err("out of range");
    }
    Ok(v)
}

/// A Python `int` as `u64`.
pub(super) fn u64_of(py: Gil, obj: *mut ffi::PyObject) -> Result<u64, Reason> {
    if !is_int(obj) {
        return Err("expected an int");
    }
    // SAFETY: the token proves the GIL is held; `obj` is a live int.
    let v = unsafe { ffi::PyLong_AsUnsignedLongLong(obj) };
    if v == u64::MAX && failed(py) {
        return Err("out of range");
    }
    Ok(v)
}

/// A Python `float` or `int` as `f64`.
pub(super) fn f64_of(py: Gil, obj: *mut ffi::PyObject) -> Result<f64, Reason> {
    // SAFETY: the token proves the GIL is held; `obj` is live; each conversion is called
    // only on the type it expects.
    let v = unsafe {
        if ffi::PyFloat_Check(obj) != 0 {
            ffi::PyFloat_AsDouble(obj)
        } else if is_int(obj) {
            ffi::PyLong_AsDouble(obj)
        } else {
            return Err("expected a float or an int");
        }
    };
    if v == -1.0 && failed(py) {
        return Err("out of range");
    }
    Ok(v)
}

/// A Python `bool`.
pub(super) fn bool_of(obj: *mut ffi::PyObject) -> Result<bool, Reason> {
    // SAFETY: `obj` is live; the check reads its type; Py_True is a static object.
    unsafe {
        if ffi::PyBool_Check(obj) == 0 {
            return Err("expected a bool");
        }
        Ok(obj == ffi::Py_True())
    }
}

/// The UTF-8 text of a Python `str`, borrowed from it.
pub(super) fn str_of<'a>(py: Gil, obj: *mut ffi::PyObject) -> Result<&'a str, Reason> {
    // SAFETY: `obj` is live; the check reads its type.
    if unsafe { ffi::PyUnicode_Check(obj) } == 0 {
        return Err("expected a str");
    }
    let bytes = super::ffi_util::utf8(py, obj).ok_or_else(|| {
        clear_error(py);
        "not encodable as UTF-8"
    })?;
    // SAFETY: PyUnicode_AsUTF8AndSize returns valid UTF-8 (it fails on lone surrogates).
    Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// The contents of a Python `bytes` or `bytearray`, borrowed from it.
pub(super) fn bytes_of<'a>(obj: *mut ffi::PyObject) -> Result<&'a [u8], Reason> {
    // SAFETY: `obj` is live; each accessor is called only on its own type, and the buffer
    // lives as long as the object, which the caller keeps alive while using the slice.
    unsafe {
        let (data, len) = if ffi::PyBytes_Check(obj) != 0 {
            (ffi::PyBytes_AsString(obj), ffi::PyBytes_Size(obj))
        } else if ffi::PyByteArray_Check(obj) != 0 {
            (ffi::PyByteArray_AsString(obj), ffi::PyByteArray_Size(obj))
        } else {
            return Err("expected bytes");
        };
        if len == 0 {
            return Ok(&[]);
        }
        Ok(std::slice::from_raw_parts(data.cast::<u8>(), len as usize))
    }
}

/// Reads integer attributes, mapping failures to `reason`.
fn attrs<const N: usize>(
    py: Gil,
    obj: *mut ffi::PyObject,
    names: [&PyObj; N],
) -> Result<[i64; N], Reason> {
    let mut out = [0; N];
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = int_attr(py, obj, name).ok_or_else(|| {
            clear_error(py);
            "unreadable date/time fields"
        })?;
    }
    Ok(out)
}

/// A `date` (or `datetime`, whose time is dropped) as days since the epoch.
pub(super) fn date_of(py: Gil, ctx: &Context, obj: *mut ffi::PyObject) -> Result<i64, Reason> {
    if !is_instance(py, obj, &ctx.date) {
        return Err("expected a datetime.date");
    }
    let n = &ctx.names;
    let [y, m, d] = attrs(py, obj, [&n.year, &n.month, &n.day])?;
    Ok(days_from_civil(y, m, d))
}

/// A `timedelta` as whole microseconds.
fn timedelta_micros(py: Gil, ctx: &Context, obj: *mut ffi::PyObject) -> Result<i64, Reason> {
    let n = &ctx.names;
    let [days, seconds, micros] = attrs(py, obj, [&n.days, &n.seconds, &n.microseconds])?;
    days.checked_mul(DAY_US)
        .and_then(|d| d.checked_add(seconds * 1_000_000 + micros))
        .ok_or("out of range")
}

/// A `datetime` as microseconds since the epoch: naive values as they are, aware values
/// as their UTC instant.
pub(super) fn datetime_micros(
    py: Gil,
    ctx: &Context,
    obj: *mut ffi::PyObject,
) -> Result<i64, Reason> {
    if !is_instance(py, obj, &ctx.datetime) {
        return Err("expected a datetime.datetime");
    }
    let n = &ctx.names;
    let [y, mo, d, h, mi, s, us] = attrs(
        py,
        obj,
        [
            &n.year,
            &n.month,
            &n.day,
            &n.hour,
            &n.minute,
            &n.second,
            &n.microsecond,
        ],
    )?;
    let offset = call_method0(py, obj, &n.utcoffset).ok_or_else(|| {
        clear_error(py);
        "its utcoffset() failed"
    })?;
    let offset = if is_none(offset.as_ptr()) {
        0
    } else {
        timedelta_micros(py, ctx, offset.as_ptr())?
    };
    let in_day = ((h * 60 + mi) * 60 + s) * 1_000_000 + us;
    days_from_civil(y, mo, d)
        .checked_mul(DAY_US)
        .and_then(|v| v.checked_add(in_day))
        .and_then(|v| v.checked_sub(offset))
        .ok_or("out of range")
}

/// A `time` as microseconds since midnight (any tzinfo is ignored, as pyarrow does).
pub(super) fn time_micros(py: Gil, ctx: &Context, obj: *mut ffi::PyObject) -> Result<i64, Reason> {
    if !is_instance(py, obj, &ctx.time) {
        return Err("expected a datetime.time");
    }
    let n = &ctx.names;
    let [h, m, s, us] = attrs(py, obj, [&n.hour, &n.minute, &n.second, &n.microsecond])?;
    Ok(((h * 60 + m) * 60 + s) * 1_000_000 + us)
}

/// A `timedelta` as a duration in `unit` (sub-unit parts truncated toward zero).
pub(super) fn duration_of(
    py: Gil,
    ctx: &Context,
    obj: *mut ffi::PyObject,
    unit: TimeUnit,
) -> Result<i64, Reason> {
    if !is_instance(py, obj, &ctx.timedelta) {
        return Err("expected a datetime.timedelta");
    }
    let micros = timedelta_micros(py, ctx, obj)?;
    super::temporal::from_micros(micros, unit).ok_or("out of range")
}

/// A `Decimal` or `int` as the unscaled `i128` of a `decimal128(precision, scale)`: exact
/// (no rounding) and within the precision.
pub(super) fn decimal_of(
    py: Gil,
    ctx: &Context,
    obj: *mut ffi::PyObject,
    precision: u8,
    scale: i8,
) -> Result<i128, Reason> {
    let converted;
    let obj = if is_int(obj) {
        converted = call1(py, ctx.decimal.as_ptr(), obj).ok_or_else(|| {
            clear_error(py);
            "not convertible to Decimal"
        })?;
        converted.as_ptr()
    } else if is_instance(py, obj, &ctx.decimal) {
        obj
    } else {
        return Err("expected a decimal.Decimal or an int");
    };
    let parts = call_method0(py, obj, &ctx.names.as_tuple).ok_or_else(|| {
        clear_error(py);
        "its as_tuple() failed"
    })?;
    // SAFETY: the token proves the GIL is held; `as_tuple()` returns a
    // DecimalTuple (a tuple subclass) of (sign, digits tuple, exponent), checked below.
    let (sign, digits, exponent) = unsafe {
        let t = parts.as_ptr();
        if ffi::PyTuple_Check(t) == 0 || ffi::PyTuple_Size(t) != 3 {
            return Err("unexpected Decimal.as_tuple()");
        }
        let exponent = ffi::PyTuple_GetItem(t, 2);
        if !is_int(exponent) {
            return Err("NaN and Infinity have no decimal128 representation");
        }
        let sign = i64_of(py, ffi::PyTuple_GetItem(t, 0))?;
        let exponent = i64_of(py, exponent)?;
        let digits = ffi::PyTuple_GetItem(t, 1);
        if ffi::PyTuple_Check(digits) == 0 {
            return Err("unexpected Decimal.as_tuple()");
        }
        let mut value: i128 = 0;
        let mut overflow = false;
        for i in 0..ffi::PyTuple_Size(digits) {
            let digit = i64_of(py, ffi::PyTuple_GetItem(digits, i))?;
            match value
                .checked_mul(10)
                .and_then(|v| v.checked_add(digit.into()))
            {
                Some(v) => value = v,
                None => overflow = true,
            }
        }
        if overflow {
            return Err("too many digits for decimal128");
        }
        (sign, value, exponent)
    };
    let shift = exponent + i64::from(scale);
    let unscaled = if digits == 0 {
        0
    } else if shift >= 0 {
        u32::try_from(shift)
            .ok()
            .and_then(|s| 10i128.checked_pow(s))
            .and_then(|f| digits.checked_mul(f))
            .ok_or("too many digits for its precision")?
    } else {
        let divisor = u32::try_from(-shift)
            .ok()
            .and_then(|s| 10i128.checked_pow(s));
        match divisor {
            Some(d) if digits % d == 0 => digits / d,
            _ => return Err("has more fractional digits than the scale (no rounding is done)"),
        }
    };
    let limit = 10i128.checked_pow(precision.into()).unwrap_or(i128::MAX);
    if unscaled >= limit {
        return Err("too many digits for its precision");
    }
    Ok(if sign == 1 { -unscaled } else { unscaled })
}
