//! Row-wise UDFs in the main interpreter: for functions that need numpy, pyarrow or another
//! extension that cannot load in a sub-interpreter, and for `lane="main"`.
//!
//! Values are converted exactly as a local datafusion-python context does for
//! `pickleball.udf` (pyarrow's `to_pylist` with maps as dicts, `pyarrow.array` back), so the
//! two lanes and a local run agree.

use datafusion::arrow::array::ArrayRef;
use datafusion::common::Result;
use pickleball_codec::udf::UdfFrame;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::MainInterpreterRuntime;
use super::arrow::{from_pyarrow, to_pyarrow};
use super::errors::{udf_contract, udf_raised};
use super::interrupt::interruptible;

/// Runs the row-wise UDF of `frame` over `args` (`rows` rows) in the main interpreter.
pub fn invoke_rows(
    runtime: &MainInterpreterRuntime,
    frame: &UdfFrame,
    args: &[ArrayRef],
    rows: usize,
) -> Result<ArrayRef> {
    let name = &frame.signature.name;
    let returns = frame.signature.returns.data_type();
    Python::attach(|py| {
        let func = runtime.callable(py, frame)?;
        let columns = python_columns(py, args)
            .map_err(|e| udf_raised(py, name, "converting its arguments", &e))?;
        let values = PyList::empty(py);
        interruptible(py, || -> Result<()> {
            for row in 0..rows {
                let row_args = columns
                    .iter()
                    .map(|column| column.get_item(row))
                    .collect::<PyResult<Vec<_>>>()
                    .and_then(|items| PyTuple::new(py, items))
                    .map_err(|e| udf_raised(py, name, "converting its arguments", &e))?;
                let value = func
                    .call1(row_args)
                    .map_err(|e| udf_raised(py, name, &format!("running on row {row}"), &e))?;
                values
                    .append(value)
                    .map_err(|e| udf_raised(py, name, "collecting its results", &e))?;
            }
            Ok(())
        })?;
        let pa = py
            .import("pyarrow")
            .map_err(|e| udf_raised(py, name, "importing pyarrow", &e))?;
        let kwargs = PyDict::new(py);
        let converted = (|| {
            kwargs.set_item(
                "type",
                to_pyarrow(py, &datafusion::arrow::array::new_empty_array(returns))?
                    .getattr("type")?,
            )?;
            pa.call_method("array", (values,), Some(&kwargs))
        })()
        .map_err(|e| {
            udf_contract(
                name,
                format!("returned a value that is not a {returns}: {e}"),
            )
        })?;
        from_pyarrow(&converted).map_err(|e| udf_raised(py, name, "converting its results", &e))
    })
}

/// Each argument array as a Python list of builtins (maps as dicts).
fn python_columns<'py>(py: Python<'py>, args: &[ArrayRef]) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("maps_as_pydicts", "lossy")?;
    args.iter()
        .map(|array| to_pyarrow(py, array.as_ref())?.call_method("to_pylist", (), Some(&kwargs)))
        .collect()
}
