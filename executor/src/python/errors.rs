//! Python exceptions as DataFusion errors: the UDF's name, the exception and its traceback
//! text. No Python object leaves the interpreter that raised it.

use datafusion::common::DataFusionError;
use pyo3::prelude::*;
use pyo3::types::PyTracebackMethods;

/// Type name, message and formatted traceback of `err`.
pub fn describe(py: Python<'_>, err: &PyErr) -> (String, String, String) {
    let kind = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let message = err.value(py).to_string();
    let traceback = err
        .traceback(py)
        .and_then(|tb| tb.format().ok())
        .unwrap_or_default();
    (kind, message, traceback)
}

/// The error of a UDF whose Python code raised `err` while doing `what`.
pub fn udf_raised(py: Python<'_>, udf: &str, what: &str, err: &PyErr) -> DataFusionError {
    let (kind, message, traceback) = describe(py, err);
    let hint = match kind.as_str() {
        "ModuleNotFoundError" | "ImportError" => format!(
            "\nHint: the module is missing on this executor; install it in the Python \
             environment the executors run in (the same packages as the client's), or move the \
             import inside the UDF's code and make it available with --udf-module. ({kind}: \
             {message})"
        ),
        _ => String::new(),
    };
    DataFusionError::Execution(format!(
        "Python UDF '{udf}' raised {kind}: {message} (while {what}){hint}\n{traceback}"
    ))
}

/// The error of a UDF whose result does not match its declaration.
pub fn udf_contract(udf: &str, problem: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("Python UDF '{udf}' {problem}"))
}

/// PyErr to DataFusionError for failures of our own glue, not of the user's code.
pub trait FromPy {
    /// The error for `err`.
    fn from_py(err: PyErr) -> DataFusionError;
}

impl FromPy for DataFusionError {
    fn from_py(err: PyErr) -> DataFusionError {
        DataFusionError::Execution(format!("Python runtime: {err}"))
    }
}
