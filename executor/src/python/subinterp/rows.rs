//! One job's rows: convert each argument column to a Python list, run the UDF over the rows
//! with the interpreter's `apply` comprehension, convert the results into the return type's
//! builder; and the errors it reports.

use std::ops::Range;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use pyo3::ffi;

use super::RowsError;
use super::context::Context;
use super::ffi_util::{Gil, PyObj, Raised, call, getattr, int, take_exception};
use super::from_python::{Mismatch, Writer};
use super::interpreter::Job;
use super::py_values::list_or_failed_entry;
use super::to_python::{Reader, ReaderError};

/// Rows converted and run at a time: the argument and result objects of a slice stay in the
/// CPU's caches (a whole 1M-row job at once ran 60% slower per row), while the per-slice
/// costs (lists, the call of `apply`) stay negligible.
const SLICE_ROWS: usize = 1024;

/// Calls `function` once per row of `job.rows` and returns the results as one array.
pub(super) fn run_rows(
    py: Gil,
    ctx: &mut Context,
    function: &PyObj,
    job: &Job,
) -> Result<ArrayRef, RowsError> {
    let name = &*job.name;
    let mut readers = Vec::with_capacity(job.args.len());
    for (k, array) in job.args.iter().enumerate() {
        match Reader::new(py, ctx, array.as_ref()) {
            Ok(reader) => readers.push(reader),
            Err(ReaderError::Python) => {
                let raised = take_exception(py, Some(&ctx.format_exception));
                return Err(failed(format!(
                    "Python UDF '{name}' cannot receive argument {k} of type {}: {}: {}",
                    array.data_type(),
                    raised.kind,
                    raised.message
                )));
            }
            Err(ReaderError::Unsupported(t)) => {
                return Err(failed(format!(
                    "Python UDF '{name}' cannot receive argument {k}: values of type {t} have \
                     no conversion to Python objects"
                )));
            }
        }
    }
    let ctx: &Context = ctx;
    let Some(mut writer) = Writer::new(py, &job.return_type, job.rows.len()) else {
        take_exception(py, None);
        return Err(failed(format!(
            "Python UDF '{name}' cannot return values of type {}",
            job.return_type
        )));
    };
    let mut start = job.rows.start;
    while start < job.rows.end {
        let slice = start..job.rows.end.min(start + SLICE_ROWS);
        start = slice.end;
        run_slice(py, ctx, function, job, &readers, slice, &mut writer)?;
    }
    writer.finish().map_err(|e| {
        failed(format!(
            "Python UDF '{name}' returned values that do not form a valid {}: {e}",
            job.return_type
        ))
    })
}

/// Runs `rows` (part of the job's rows) through `apply` and appends the results to `writer`.
fn run_slice(
    py: Gil,
    ctx: &Context,
    function: &PyObj,
    job: &Job,
    readers: &[Reader<'_>],
    rows: Range<usize>,
    writer: &mut Writer,
) -> Result<(), RowsError> {
    let name = &*job.name;
    let mut columns = Vec::with_capacity(readers.len().max(1));
    for (k, reader) in readers.iter().enumerate() {
        let column = list_or_failed_entry(py, ctx, reader, rows.clone()).map_err(|row| {
            let raised = take_exception(py, Some(&ctx.format_exception));
            failed(format!(
                "Python UDF '{name}' cannot receive the value of argument {k} ({}) at row \
                 {row}: {}: {}",
                job.args[k].data_type(),
                raised.kind,
                raised.message
            ))
        })?;
        columns.push(column);
    }
    if columns.is_empty() {
        columns.push(nones(py, rows.len()).ok_or_else(|| python_failure(py, name))?);
    }
    // SAFETY: the token proves the GIL is held; the column is a live list.
    let first = PyObj::owned(py, unsafe { ffi::PyObject_GetIter(columns[0].as_ptr()) })
        .ok_or_else(|| python_failure(py, name))?;
    let nargs = int(py, readers.len() as i64).ok_or_else(|| python_failure(py, name))?;
    let mut args = vec![function.as_ptr(), nargs.as_ptr(), first.as_ptr()];
    args.extend(columns[1..].iter().map(PyObj::as_ptr));
    let Some(results) = call(py, ctx.apply.as_ptr(), &args) else {
        let (row, raised) = raised_in_udf(py, ctx, &first, rows);
        return Err(call_error(name, row, &raised));
    };
    // A UDF can reach `apply`'s frame and advance its iterator; never read past the list.
    // SAFETY: the token proves the GIL is held; `results` is a live object.
    let complete = unsafe {
        ffi::PyList_CheckExact(results.as_ptr()) != 0
            && ffi::PyList_GET_SIZE(results.as_ptr()) == rows.len() as ffi::Py_ssize_t
    };
    if !complete {
        return Err(failed(format!(
            "Python UDF '{name}' changed how it is called (it consumed its own argument \
             iterator): rows {}..{} did not get one result each; do not touch the caller's frame",
            rows.start, rows.end
        )));
    }
    writer
        .append_list(py, ctx, results.as_ptr(), rows.len())
        .map_err(|(i, m)| mismatch_error(name, rows.start + i, &job.return_type, m))?;
    // The iterator holds the first list and the results may hold arguments (`return x`):
    // released, they leave the argument lists as the only holders of what can be recycled.
    drop((first, results));
    let mut recycled = ctx.recycled.borrow_mut();
    for (column, reader) in columns.iter().zip(readers) {
        if reader.recyclable() {
            recycled.reclaim(py, column);
        }
    }
    Ok(())
}

/// A list of `n` `None`s: the rows of a UDF without arguments.
fn nones(py: Gil, n: usize) -> Option<PyObj> {
    // SAFETY: the token proves the GIL is held.
    let list = PyObj::owned(py, unsafe { ffi::PyList_New(n as ffi::Py_ssize_t) })?;
    for i in 0..n {
        let none = PyObj::none(py).into_raw();
        // SAFETY: a new list of this length, slot `i` empty; SET_ITEM steals the reference.
        unsafe { ffi::PyList_SET_ITEM(list.as_ptr(), i as ffi::Py_ssize_t, none) };
    }
    Some(list)
}

/// An unexpected failure of the Python runtime itself (out of memory) while preparing a call.
fn python_failure(py: Gil, name: &str) -> RowsError {
    let raised = take_exception(py, None);
    failed(format!(
        "Python UDF '{name}': preparing its arguments failed: {}: {}",
        raised.kind, raised.message
    ))
}

/// The exception `apply` raised, without `apply`'s own frame in its traceback (the user's
/// traceback starts at their function), and the row it was raised on: `apply` had consumed
/// `first` up to and including that row.
fn raised_in_udf(py: Gil, ctx: &Context, first: &PyObj, rows: Range<usize>) -> (usize, Raised) {
    // SAFETY: the token proves the GIL is held; returns a new reference or null.
    let exc = PyObj::owned(py, unsafe { ffi::PyErr_GetRaisedException() });
    if let Some(exc) = &exc {
        // SAFETY: `exc` is a live exception; GetTraceback returns a new reference or null.
        let tb = PyObj::owned(py, unsafe { ffi::PyException_GetTraceback(exc.as_ptr()) });
        let next = tb.and_then(|tb| getattr(py, tb.as_ptr(), c"tb_next"));
        match next {
            // SAFETY: `exc` is live and `next` a traceback object (SetTraceback increfs it).
            Some(next) if !super::ffi_util::is_none(next.as_ptr()) => unsafe {
                ffi::PyException_SetTraceback(exc.as_ptr(), next.as_ptr());
            },
            _ => super::ffi_util::clear_error(py),
        }
    }
    let left = getattr(py, first.as_ptr(), c"__length_hint__")
        .and_then(|hint| call(py, hint.as_ptr(), &[]))
        // SAFETY: the token proves the GIL is held; `left` is a live object.
        .map(|left| unsafe { ffi::PyLong_AsSsize_t(left.as_ptr()) })
        .and_then(|left| usize::try_from(left).ok());
    super::ffi_util::clear_error(py);
    let row = match left {
        Some(left) => rows.start + rows.len().saturating_sub(left + 1),
        None => rows.start,
    };
    if let Some(exc) = exc {
        // SAFETY: SetRaisedException steals the reference we give up.
        unsafe { ffi::PyErr_SetRaisedException(exc.into_raw()) };
    }
    (row, take_exception(py, Some(&ctx.format_exception)))
}

fn failed(message: String) -> RowsError {
    RowsError::Failed(DataFusionError::Execution(message))
}

/// The error of a UDF that raised while called on `row`. An ImportError of a module that
/// refuses sub-interpreters means the UDF needs the main interpreter instead.
fn call_error(udf: &str, row: usize, raised: &Raised) -> RowsError {
    let refused = |text: &str| text.contains("subinterpreter") || text.contains("sub-interpreter");
    if raised.import_error && (refused(&raised.message) || refused(&raised.traceback)) {
        return RowsError::LoadRefused(refusal_reason(raised));
    }
    raised_error(udf, &format!("running it on row {row}"), raised)
}

/// The text of an import error that keeps a UDF out of sub-interpreters, short: the line
/// naming the refusing module ("ImportError: module X does not support loading in
/// subinterpreters"), found in the exception or its chained causes (packages often re-raise
/// their own long ImportError), else the exception's first line.
pub(super) fn refusal_reason(raised: &Raised) -> String {
    let mentions = |line: &&str| line.contains("subinterpreter");
    let lines = || raised.traceback.lines().map(str::trim);
    if let Some(line) = lines().filter(mentions).find(|l| l.contains("Error: ")) {
        return line.to_owned();
    }
    let message = raised.message.lines().map(str::trim);
    let line = message
        .clone()
        .find(mentions)
        .or_else(|| message.clone().find(|l| !l.is_empty()))
        .unwrap_or_default();
    format!("{}: {line}", raised.kind)
}

/// A UDF's exception as a user-facing error: name, exception, what it was doing, the
/// traceback, and for import errors where to install the module (as the main lane says).
pub(super) fn raised_error(udf: &str, what: &str, raised: &Raised) -> RowsError {
    let Raised {
        kind,
        message,
        traceback,
        ..
    } = raised;
    let hint = if raised.import_error {
        format!(
            "\nHint: the module is missing on this executor; install it in the Python \
             environment the executors run in (the same packages as the client's), or move the \
             import inside the UDF's code and make it available with --udf-module. ({kind}: \
             {message})"
        )
    } else {
        String::new()
    };
    failed(format!(
        "Python UDF '{udf}' raised {kind}: {message} (while {what}){hint}\n{traceback}"
    ))
}

/// A returned value that does not fit the declared return type.
fn mismatch_error(udf: &str, row: usize, declared: &DataType, m: Mismatch) -> RowsError {
    let Mismatch {
        repr,
        type_name,
        expected,
        reason,
    } = m;
    if expected == *declared {
        failed(format!(
            "Python UDF '{udf}' returned {repr} (a {type_name}) at row {row}, which cannot be \
             converted to its declared return type {declared}: {reason}. Return values of \
             that type (None for null), or declare the type the function returns."
        ))
    } else {
        failed(format!(
            "Python UDF '{udf}' returned a value at row {row} that cannot be converted to its \
             declared return type {declared}: the element {repr} (a {type_name}) is not a \
             valid {expected}: {reason}. Return values of that type (None for null), or \
             declare the type the function returns."
        ))
    }
}
