//! The row loop of one job: convert each row's arguments, call the UDF with vectorcall,
//! convert its result into the return type's builder; and the errors it reports.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use pyo3::ffi;

use super::RowsError;
use super::context::Context;
use super::ffi_util::{Gil, PyObj, Raised, take_exception};
use super::from_python::{Mismatch, Writer};
use super::interpreter::Job;
use super::to_python::{Reader, ReaderError};

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
    let nargs = readers.len();
    // Slot 0 stays free so that callees may use it (PY_VECTORCALL_ARGUMENTS_OFFSET);
    // `Option<PyObj>` has the layout of a nullable `*mut PyObject`.
    let mut slots: Vec<Option<PyObj>> = Vec::with_capacity(nargs + 1);
    slots.push(None);
    for row in job.rows.clone() {
        for (k, reader) in readers.iter().enumerate() {
            let Some(value) = reader.get(py, ctx, row) else {
                let raised = take_exception(py, Some(&ctx.format_exception));
                return Err(failed(format!(
                    "Python UDF '{name}' cannot receive the value of argument {k} ({}) at row \
                     {row}: {}: {}",
                    job.args[k].data_type(),
                    raised.kind,
                    raised.message
                )));
            };
            slots.push(Some(value));
        }
        // SAFETY: the token proves the GIL is held; `function` is live; slots 1..=nargs hold
        // live arguments and slot 0 is ours, so the callee may borrow it temporarily as
        // PY_VECTORCALL_ARGUMENTS_OFFSET allows (the pointer is derived mutably for that).
        let result = unsafe {
            ffi::PyObject_Vectorcall(
                function.as_ptr(),
                slots.as_mut_ptr().add(1).cast::<*mut ffi::PyObject>(),
                nargs | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                std::ptr::null_mut(),
            )
        };
        slots.truncate(1);
        let Some(result) = PyObj::owned(py, result) else {
            let raised = take_exception(py, Some(&ctx.format_exception));
            return Err(call_error(name, row, &raised));
        };
        writer
            .append(py, ctx, result.as_ptr())
            .map_err(|m| mismatch_error(name, row, &job.return_type, m))?;
    }
    writer.finish().map_err(|e| {
        failed(format!(
            "Python UDF '{name}' returned values that do not form a valid {}: {e}",
            job.return_type
        ))
    })
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
