//! Python UDFs in the executor's main interpreter, with datafusion-python's calling
//! conventions: pyarrow arrays in and out, the Accumulator and WindowEvaluator protocols.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, PartitionEvaluatorArgs};
use datafusion::logical_expr::{
    Accumulator, ColumnarValue, PartitionEvaluator, ScalarFunctionArgs,
};
use pickleball_codec::udf::{Convention, PythonRuntime, UdfFrame};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::arrow::{from_pyarrow, to_pyarrow};
use super::errors::{FromPy, udf_contract, udf_raised};
use super::interrupt::{MainObject, interruptible, interruptible_by};
use crate::cancellation::{CancelToken, current};

/// Runs Python UDFs in this process's main interpreter. Each distinct payload is unpickled
/// once and cached by digest; the GIL is held only while Python runs.
#[derive(Debug, Default)]
pub struct MainInterpreterRuntime {
    loaded: Mutex<HashMap<[u8; 32], MainObject>>,
}

impl MainInterpreterRuntime {
    /// The UDF's callable (function, accumulator factory or evaluator factory). The sender's
    /// Python version is checked first: the digest covers the payload, not who pickled it.
    pub(crate) fn callable<'py>(
        &self,
        py: Python<'py>,
        frame: &UdfFrame,
    ) -> Result<Bound<'py, PyAny>> {
        let name = &frame.signature.name;
        let version = py.version_info();
        if (version.major, version.minor) != frame.python {
            return Err(udf_contract(
                name,
                format!(
                    "was pickled by Python {}.{} but this executor runs Python {}.{}; payloads \
                     are not portable across Python minor versions. Run the client and the \
                     executors with the same Python minor version.",
                    frame.python.0, frame.python.1, version.major, version.minor
                ),
            ));
        }
        if let Some(found) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&frame.digest)
        {
            return Ok(found.bind(py).clone());
        }
        let payload = pyo3::types::PyBytes::new(py, frame.payload());
        let loaded = py
            .import("cloudpickle")
            .and_then(|m| m.call_method1("loads", (payload,)))
            .map_err(|e| udf_raised(py, name, "unpickling it on this executor", &e))?;
        // datafusion-python pickles (name, callable, input schema, return schema, ...);
        // pickleball's row-wise UDFs pickle the plain function.
        let callable = match frame.signature.convention {
            Convention::Rows => loaded,
            Convention::Pyarrow => loaded.get_item(1).map_err(|_| {
                udf_contract(name, "payload is not a datafusion-python UDF description")
            })?,
        };
        super::specialize::give_versions_main(py, &callable);
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(frame.digest, MainObject::new(callable.clone().unbind()));
        Ok(callable)
    }
}

impl MainInterpreterRuntime {
    /// A fresh protocol object (Accumulator, WindowEvaluator) from the UDF's factory.
    fn instantiate(&self, frame: &UdfFrame, what: &str) -> Result<Protocol> {
        let cancel = current();
        Python::attach(|py| {
            let factory = self.callable(py, frame)?;
            interruptible_by(py, cancel.as_ref(), || factory.call0())
                .map(|instance| Protocol {
                    object: MainObject::new(instance.unbind()),
                    cancel: cancel.clone(),
                })
                .map_err(|e| udf_raised(py, &frame.signature.name, what, &e))
        })
    }
}

fn pyarrow_args<'py>(py: Python<'py>, arrays: &[ArrayRef]) -> PyResult<Vec<Bound<'py, PyAny>>> {
    arrays.iter().map(|a| to_pyarrow(py, a.as_ref())).collect()
}

/// The arrays as one Python list of pyarrow arrays (the protocols' `values` / `states`).
fn pyarrow_list<'py>(
    py: Python<'py>,
    udf: &str,
    arrays: &[ArrayRef],
) -> Result<Bound<'py, PyList>> {
    let arrays = pyarrow_args(py, arrays)
        .map_err(|e| udf_raised(py, udf, "converting its arguments", &e))?;
    PyList::new(py, arrays).map_err(DataFusionError::from_py)
}

/// The array a UDF returned, checked against its declared type and the row count.
fn returned_array(
    name: &str,
    result: &Bound<'_, PyAny>,
    expected: &DataType,
    rows: usize,
) -> Result<ArrayRef> {
    let array = from_pyarrow(result).map_err(|_| {
        let got = result
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        udf_contract(
            name,
            format!("must return a pyarrow Array, but returned a {got}"),
        )
    })?;
    if array.data_type() != expected {
        return Err(udf_contract(
            name,
            format!(
                "returned values of type {} but is declared to return {expected}",
                array.data_type()
            ),
        ));
    }
    if array.len() != rows {
        return Err(udf_contract(
            name,
            format!("returned {} values for {rows} input rows", array.len()),
        ));
    }
    Ok(array)
}

/// A value returned by `state()`, `evaluate()` or a window `evaluate()`, as `expected`.
fn returned_scalar(
    py: Python<'_>,
    name: &str,
    value: &Bound<'_, PyAny>,
    expected: &DataType,
) -> Result<ScalarValue> {
    let convert = || -> PyResult<ArrayRef> {
        let pa = py.import("pyarrow")?;
        let array = if value.is_instance(&pa.getattr("Scalar")?)? {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("type", value.getattr("type")?)?;
            pa.call_method("array", (PyList::new(py, [value])?,), Some(&kwargs))?
        } else {
            pa.call_method1("array", (PyList::new(py, [value])?,))?
        };
        from_pyarrow(&array)
    };
    let array = convert().map_err(|e| udf_raised(py, name, "converting its result", &e))?;
    ScalarValue::try_from_array(&array, 0)?
        .cast_to(expected)
        .map_err(|e| {
            udf_contract(
                name,
                format!("returned a value not convertible to {expected}: {e}"),
            )
        })
}

/// A scalar UDF's arguments as arrays of `number_rows` rows (scalars expanded).
pub(crate) fn argument_arrays(args: &ScalarFunctionArgs) -> Result<Vec<ArrayRef>> {
    args.args
        .iter()
        .map(|a| a.to_array(args.number_rows))
        .collect()
}

impl PythonRuntime for MainInterpreterRuntime {
    fn invoke_scalar(
        &self,
        frame: &Arc<UdfFrame>,
        args: ScalarFunctionArgs,
    ) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = argument_arrays(&args)?;
        let name = &frame.signature.name;
        let expected = frame.signature.returns.data_type();
        Python::attach(|py| {
            let func = self.callable(py, frame)?;
            let py_args = pyarrow_args(py, &arrays)
                .map_err(|e| udf_raised(py, name, "converting its arguments", &e))?;
            let py_args =
                PyTuple::new(py, py_args).map_err(|e| udf_raised(py, name, "calling it", &e))?;
            let result = interruptible(py, || func.call1(py_args))
                .map_err(|e| udf_raised(py, name, "running", &e))?;
            returned_array(name, &result, expected, rows).map(ColumnarValue::Array)
        })
    }

    fn accumulator(
        &self,
        frame: &Arc<UdfFrame>,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn Accumulator>> {
        let instance = self.instantiate(frame, "creating its accumulator")?;
        Ok(Box::new(PyAccumulator {
            instance,
            frame: Arc::clone(frame),
        }))
    }

    fn partition_evaluator(
        &self,
        frame: &Arc<UdfFrame>,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        let instance = self.instantiate(frame, "creating its window evaluator")?;
        Ok(Box::new(PyEvaluator {
            instance,
            frame: Arc::clone(frame),
        }))
    }
}

/// An accumulator or window evaluator object, with the cancellation token of the task that
/// created it (its methods run later, outside the UDF call that made it).
#[derive(Debug)]
struct Protocol {
    object: MainObject,
    cancel: Option<Arc<CancelToken>>,
}

impl std::ops::Deref for Protocol {
    type Target = Py<PyAny>;

    fn deref(&self) -> &Py<PyAny> {
        &self.object
    }
}

/// A Python object implementing one of datafusion-python's protocols.
#[derive(Debug)]
struct ProtocolObject;

impl ProtocolObject {
    /// Calls `method(*args)` on `instance`, with the UDF named in any error.
    fn call<'py>(
        py: Python<'py>,
        instance: &Protocol,
        frame: &UdfFrame,
        method: &str,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) -> Result<Bound<'py, PyAny>> {
        let call = || instance.bind(py).call_method1(method, args);
        interruptible_by(py, instance.cancel.as_ref(), call).map_err(|e| {
            udf_raised(
                py,
                &frame.signature.name,
                &format!("calling {method}()"),
                &e,
            )
        })
    }

    fn has(py: Python<'_>, instance: &Py<PyAny>, method: &str) -> bool {
        instance.bind(py).hasattr(method).unwrap_or(false)
    }

    fn flag(py: Python<'_>, instance: &Py<PyAny>, method: &str, default: bool) -> bool {
        instance
            .bind(py)
            .call_method0(method)
            .and_then(|v| v.extract::<bool>())
            .unwrap_or(default)
    }
}

/// datafusion-python's `Accumulator` protocol on a Python object.
#[derive(Debug)]
struct PyAccumulator {
    instance: Protocol,
    frame: Arc<UdfFrame>,
}

impl PyAccumulator {
    fn arrays_call(&self, method: &str, values: &[ArrayRef], as_list: bool) -> Result<()> {
        let name = &self.frame.signature.name;
        Python::attach(|py| {
            let arrays = pyarrow_args(py, values)
                .map_err(|e| udf_raised(py, name, "converting its arguments", &e))?;
            let args = if as_list {
                PyTuple::new(
                    py,
                    [PyList::new(py, arrays).map_err(DataFusionError::from_py)?],
                )
            } else {
                PyTuple::new(py, arrays)
            }
            .map_err(DataFusionError::from_py)?;
            ProtocolObject::call(py, &self.instance, &self.frame, method, args).map(|_| ())
        })
    }
}

impl Accumulator for PyAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.arrays_call("update", values, false)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.arrays_call("merge", states, true)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.arrays_call("retract_batch", values, false)
    }

    fn supports_retract_batch(&self) -> bool {
        Python::attach(|py| ProtocolObject::has(py, &self.instance, "retract_batch"))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let name = &self.frame.signature.name;
        Python::attach(|py| {
            let state = ProtocolObject::call(py, &self.instance, &self.frame, "state", ())?;
            let values: Vec<Bound<'_, PyAny>> = state
                .try_iter()
                .and_then(|it| it.collect())
                .map_err(|e| udf_raised(py, name, "reading its state()", &e))?;
            if values.len() != self.frame.signature.state.len() {
                return Err(udf_contract(
                    name,
                    format!(
                        "state() returned {} values but {} state types are declared",
                        values.len(),
                        self.frame.signature.state.len()
                    ),
                ));
            }
            values
                .iter()
                .zip(&self.frame.signature.state)
                .map(|(v, field)| returned_scalar(py, name, v, field.data_type()))
                .collect()
        })
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let name = &self.frame.signature.name;
        Python::attach(|py| {
            let value = ProtocolObject::call(py, &self.instance, &self.frame, "evaluate", ())?;
            returned_scalar(py, name, &value, self.frame.signature.returns.data_type())
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// datafusion-python's `WindowEvaluator` protocol on a Python object.
#[derive(Debug)]
struct PyEvaluator {
    instance: Protocol,
    frame: Arc<UdfFrame>,
}

impl PartitionEvaluator for PyEvaluator {
    fn get_range(&self, idx: usize, n_rows: usize) -> Result<Range<usize>> {
        Python::attach(|py| {
            let range =
                ProtocolObject::call(py, &self.instance, &self.frame, "get_range", (idx, n_rows))?;
            let (start, end): (usize, usize) = range.extract().map_err(|e| {
                udf_raised(py, &self.frame.signature.name, "reading get_range()", &e)
            })?;
            Ok(start..end)
        })
    }

    fn is_causal(&self) -> bool {
        Python::attach(|py| ProtocolObject::flag(py, &self.instance, "is_causal", false))
    }

    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let name = &self.frame.signature.name;
        Python::attach(|py| {
            let list = pyarrow_list(py, name, values)?;
            let result = ProtocolObject::call(
                py,
                &self.instance,
                &self.frame,
                "evaluate_all",
                (list, num_rows),
            )?;
            returned_array(
                name,
                &result,
                self.frame.signature.returns.data_type(),
                num_rows,
            )
        })
    }

    fn evaluate(&mut self, values: &[ArrayRef], range: &Range<usize>) -> Result<ScalarValue> {
        let name = &self.frame.signature.name;
        Python::attach(|py| {
            let list = pyarrow_list(py, name, values)?;
            let value = ProtocolObject::call(
                py,
                &self.instance,
                &self.frame,
                "evaluate",
                (list, (range.start, range.end)),
            )?;
            returned_scalar(py, name, &value, self.frame.signature.returns.data_type())
        })
    }

    fn evaluate_all_with_rank(
        &self,
        num_rows: usize,
        ranks_in_partition: &[Range<usize>],
    ) -> Result<ArrayRef> {
        let name = &self.frame.signature.name;
        Python::attach(|py| {
            let ranks: Vec<(usize, usize)> = ranks_in_partition
                .iter()
                .map(|r| (r.start, r.end))
                .collect();
            let result = ProtocolObject::call(
                py,
                &self.instance,
                &self.frame,
                "evaluate_all_with_rank",
                (num_rows, ranks),
            )?;
            returned_array(
                name,
                &result,
                self.frame.signature.returns.data_type(),
                num_rows,
            )
        })
    }

    fn supports_bounded_execution(&self) -> bool {
        Python::attach(|py| {
            ProtocolObject::flag(py, &self.instance, "supports_bounded_execution", false)
        })
    }

    fn uses_window_frame(&self) -> bool {
        Python::attach(|py| ProtocolObject::flag(py, &self.instance, "uses_window_frame", false))
    }

    fn include_rank(&self) -> bool {
        Python::attach(|py| ProtocolObject::flag(py, &self.instance, "include_rank", false))
    }
}
