//! Row-wise Python UDFs in a pool of own-GIL sub-interpreters (PEP 684, CPython >= 3.12), so
//! that plain Python functions run on several cores at once.
//!
//! Each interpreter lives on its own OS thread, created at start-up and ended at shutdown on
//! that thread. A call's rows are split into contiguous chunks; the interpreters take chunks
//! from one shared queue, convert each row's Arrow values to Python builtins, call the
//! function, and convert its results back into Arrow builders (all in Rust, with the raw C
//! API: pyo3's safe API and pyarrow do not work in sub-interpreters). Only Rust data crosses
//! threads: Arrow arrays in, arrays or error texts out.
//!
//! Payloads whose unpickling (or whose calls) import an extension module that refuses
//! sub-interpreters (numpy, pyarrow, pandas, ...) yield [`RowsError::LoadRefused`]; the caller
//! runs those UDFs in the main interpreter instead.
//!
//! The pool needs the C API of CPython 3.12 (per-interpreter GIL). Built against an older
//! Python, [`SubInterpreterPool::start`] fails with [`own_gil_unsupported`]'s message and the
//! executor runs row-wise UDFs in the main interpreter.

/// Declares the pool's modules, which use the C API of CPython >= 3.12.
macro_rules! own_gil_modules {
    ($($name:ident),* $(,)?) => { $(#[cfg(Py_3_12)] mod $name;)* };
}
own_gil_modules!(
    callers,
    context,
    extract,
    ffi_util,
    from_python,
    interpreter,
    pool,
    py_values,
    raw_blocks,
    recycled,
    rows,
    temporal,
    to_python,
);
#[cfg(not(Py_3_12))]
mod unavailable;

use std::fmt;

#[cfg(Py_3_12)]
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DataFusionError;

#[cfg(Py_3_12)]
pub use pool::SubInterpreterPool;
#[cfg(Py_3_12)]
pub use raw_blocks::{reuse_status, reused_blocks};
#[cfg(not(Py_3_12))]
pub use unavailable::SubInterpreterPool;

/// Whether the non-nested type `data_type` converts to and from Python builtins, in both
/// directions (arguments and results).
#[cfg(Py_3_12)]
fn converts_scalar(data_type: &DataType) -> bool {
    use DataType::*;
    use datafusion::arrow::datatypes::TimeUnit;
    matches!(
        data_type,
        Null | Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float16
            | Float32
            | Float64
            | Utf8
            | LargeUtf8
            | Utf8View
            | Binary
            | LargeBinary
            | BinaryView
            | FixedSizeBinary(_)
            | Date32
            | Date64
            | Timestamp(_, _)
            | Decimal128(_, _)
            | Time32(TimeUnit::Second | TimeUnit::Millisecond)
            | Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond)
            | Duration(_)
    )
}

/// Why [`SubInterpreterPool::call_rows`] produced no array.
#[derive(Debug)]
pub enum RowsError {
    /// The payload cannot load in a sub-interpreter (it imports an extension module that
    /// does not support them, e.g. "module X does not support loading in subinterpreters").
    /// The caller should run the UDF in the main interpreter. Carries the import error text.
    LoadRefused(String),
    /// Anything else, as a user-facing error (UDF name, cause, remedy; the Python traceback
    /// for exceptions).
    Failed(DataFusionError),
}

impl fmt::Display for RowsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowsError::LoadRefused(message) => {
                write!(f, "cannot load in a sub-interpreter: {message}")
            }
            RowsError::Failed(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RowsError {}

impl From<RowsError> for DataFusionError {
    fn from(e: RowsError) -> Self {
        match e {
            RowsError::Failed(e) => e,
            RowsError::LoadRefused(message) => DataFusionError::Execution(format!(
                "Python UDF cannot run in a sub-interpreter: {message}"
            )),
        }
    }
}

/// Why a Python `major.minor` cannot host the pool, or `None` if it can: own-GIL
/// sub-interpreters (PEP 684) arrived in CPython 3.12.
pub fn own_gil_unsupported(major: u8, minor: u8) -> Option<DataFusionError> {
    ((major, minor) < (3, 12)).then(|| {
        DataFusionError::Configuration(format!(
            "sub-interpreters with their own GIL need Python 3.12 or newer; this executor \
             runs Python {major}.{minor}: build it against Python >= 3.12 to run row-wise \
             UDFs on every core"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_gil_needs_python_3_12() {
        for (major, minor) in [(3, 12), (3, 13), (3, 14), (4, 0)] {
            assert!(
                own_gil_unsupported(major, minor).is_none(),
                "{major}.{minor}"
            );
        }
        let refusal = own_gil_unsupported(3, 11).expect("3.11 has no own-GIL interpreters");
        let text = refusal.to_string();
        assert!(text.contains("need Python 3.12 or newer"), "{text}");
        assert!(text.contains("runs Python 3.11"), "{text}");
        assert!(text.contains("build it against Python >= 3.12"), "{text}");
        assert!(own_gil_unsupported(2, 7).is_some());
    }
}
