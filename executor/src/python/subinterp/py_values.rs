//! Python objects for single Arrow values: `str`, `bytes`, `list`, and the `datetime`,
//! `timedelta` and `Decimal` objects built with the classes the interpreter imported.

use std::io::Write as _;

use datafusion::arrow::datatypes::TimeUnit;
use pyo3::ffi;

use super::context::Context;
use super::ffi_util::{Gil, PyObj, call, int};
use super::temporal::{civil_from_days, split_day};
use super::to_python::Reader;

/// A new `str`.
pub(super) fn string(py: Gil, s: &str) -> Option<PyObj> {
    PyObj::owned(py, super::ffi_util::unicode(py, s))
}

/// A new `bytes`.
pub(super) fn bytes_of(py: Gil, b: &[u8]) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held; the pointer and length describe `b`.
    PyObj::owned(py, unsafe {
        ffi::PyBytes_FromStringAndSize(b.as_ptr().cast(), b.len() as ffi::Py_ssize_t)
    })
}

/// `[child[i] for i in range]`.
pub(super) fn list(
    py: Gil,
    ctx: &Context,
    child: &Reader<'_>,
    range: std::ops::Range<usize>,
) -> Option<PyObj> {
    list_or_failed_entry(py, ctx, child, range).ok()
}

/// `[child[i] for i in range]`, or the index `i` whose value Python cannot represent (with
/// the exception set).
pub(super) fn list_or_failed_entry(
    py: Gil,
    ctx: &Context,
    child: &Reader<'_>,
    range: std::ops::Range<usize>,
) -> Result<PyObj, usize> {
    // SAFETY: the token proves the GIL is held.
    let list = PyObj::owned(py, unsafe {
        ffi::PyList_New(range.len() as ffi::Py_ssize_t)
    })
    .ok_or(range.start)?;
    let plain = child.fill_plain(py, &mut ctx.recycled.borrow_mut(), &list, range.clone());
    match plain {
        Some(filled) => filled?,
        None => fill(&list, range, |row| child.get(py, ctx, row))?,
    }
    Ok(list)
}

/// `list[i] = make(row)` for the rows of `range` (`list` new, with `range.len()` empty
/// slots); the row whose value could not be made.
pub(super) fn fill(
    list: &PyObj,
    range: std::ops::Range<usize>,
    mut make: impl FnMut(usize) -> Option<PyObj>,
) -> Result<(), usize> {
    for (i, row) in range.enumerate() {
        let item = make(row).ok_or(row)?;
        // SAFETY: `list` is a new list with an empty slot `i`; SET_ITEM steals the reference
        // handed over with `into_raw`.
        unsafe { ffi::PyList_SET_ITEM(list.as_ptr(), i as ffi::Py_ssize_t, item.into_raw()) };
    }
    Ok(())
}

/// `date(y, m, d)` for a day count since the epoch.
pub(super) fn date(py: Gil, ctx: &Context, days: i64) -> Option<PyObj> {
    let (y, m, d) = civil_from_days(days);
    let (y, m, d) = (int(py, y)?, int(py, m)?, int(py, d)?);
    call(py, ctx.date.as_ptr(), &[y.as_ptr(), m.as_ptr(), d.as_ptr()])
}

/// Sets OverflowError for a value whose microseconds overflow i64.
fn overflow(_py: Gil) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held; the message is NUL-terminated.
    unsafe {
        ffi::PyErr_SetString(
            ffi::PyExc_OverflowError,
            c"value out of the range of Python's datetime types".as_ptr(),
        )
    };
    None
}

/// `datetime(...)` for microseconds since the epoch: naive without a zone, otherwise the UTC
/// instant viewed in `zone` (`astimezone`). `None` for out-of-range values (exception set).
pub(super) fn timestamp(
    py: Gil,
    ctx: &Context,
    micros: Option<i64>,
    zone: Option<&PyObj>,
) -> Option<PyObj> {
    let Some(micros) = micros else {
        return overflow(py);
    };
    let (days, in_day) = split_day(micros);
    let (y, mo, d) = civil_from_days(days);
    let seconds = in_day / 1_000_000;
    let parts = [
        int(py, y)?,
        int(py, mo)?,
        int(py, d)?,
        int(py, seconds / 3600)?,
        int(py, seconds / 60 % 60)?,
        int(py, seconds % 60)?,
        int(py, in_day % 1_000_000)?,
    ];
    let mut args = [std::ptr::null_mut(); 8];
    for (slot, part) in args.iter_mut().zip(&parts) {
        *slot = part.as_ptr();
    }
    let Some(zone) = zone else {
        return call(py, ctx.datetime.as_ptr(), &args[..7]);
    };
    // The instant is UTC; build it in UTC, then view it in the column's zone.
    args[7] = ctx.utc.as_ptr();
    let utc = call(py, ctx.datetime.as_ptr(), &args)?;
    if zone.as_ptr() == ctx.utc.as_ptr() {
        return Some(utc);
    }
    let method_args = [utc.as_ptr(), zone.as_ptr()];
    // SAFETY: the token proves the GIL is held; `method_args[0]` is the receiver and the
    // name a `str`.
    PyObj::owned(py, unsafe {
        ffi::PyObject_VectorcallMethod(
            ctx.names.astimezone.as_ptr(),
            method_args.as_ptr(),
            2,
            std::ptr::null_mut(),
        )
    })
}

/// `time(h, m, s, us)` for microseconds since midnight.
pub(super) fn time(py: Gil, ctx: &Context, micros: Option<i64>) -> Option<PyObj> {
    let Some(micros) = micros else {
        return overflow(py);
    };
    let seconds = micros.div_euclid(1_000_000);
    let parts = [
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        micros.rem_euclid(1_000_000),
    ];
    let (h, m, s, us) = (
        int(py, parts[0])?,
        int(py, parts[1])?,
        int(py, parts[2])?,
        int(py, parts[3])?,
    );
    call(
        py,
        ctx.time.as_ptr(),
        &[h.as_ptr(), m.as_ptr(), s.as_ptr(), us.as_ptr()],
    )
}

/// `timedelta(days, seconds, microseconds)` for a duration in `unit` (sub-microsecond parts
/// dropped).
pub(super) fn duration(py: Gil, ctx: &Context, value: i64, unit: TimeUnit) -> Option<PyObj> {
    // Split in i128 so that no unit overflows; timedelta normalizes the parts itself.
    let per_second: i128 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let value = i128::from(value);
    let seconds = value.div_euclid(per_second);
    let micros = value.rem_euclid(per_second) * 1_000_000 / per_second;
    let days = seconds.div_euclid(86_400) as i64;
    let seconds = seconds.rem_euclid(86_400) as i64;
    let (d, s, us) = (int(py, days)?, int(py, seconds)?, int(py, micros as i64)?);
    call(
        py,
        ctx.timedelta.as_ptr(),
        &[d.as_ptr(), s.as_ptr(), us.as_ptr()],
    )
}

/// `Decimal("<unscaled>E<-scale>")`: exact, and keeps the column's exponent.
pub(super) fn decimal(py: Gil, ctx: &Context, unscaled: i128, scale: i8) -> Option<PyObj> {
    let mut buffer = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    write!(cursor, "{unscaled}E{}", -i32::from(scale)).expect("64 bytes hold any i128");
    let len = cursor.position() as usize;
    let text = std::str::from_utf8(&buffer[..len]).expect("ASCII");
    let text = string(py, text)?;
    super::ffi_util::call1(py, ctx.decimal.as_ptr(), text.as_ptr())
}
