//! Arrow data across the boundary of the main interpreter, through the Arrow PyCapsule
//! interface (no arrow `pyarrow` feature: that would put pyo3 under every arrow user).
//!
//! Only for the main interpreter: pyarrow cannot load in an own-GIL sub-interpreter.

use std::ffi::CStr;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StructArray, make_array};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi};
use datafusion::arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use datafusion::arrow::record_batch::RecordBatchReader;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyTuple};

const STREAM: &CStr = c"arrow_array_stream";
const SCHEMA: &CStr = c"arrow_schema";
const ARRAY: &CStr = c"arrow_array";

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// `(schema capsule, array capsule)` for one array, as `__arrow_c_array__` returns them.
pub fn array_capsules<'py>(py: Python<'py>, array: &dyn Array) -> PyResult<Bound<'py, PyTuple>> {
    let data = array.to_data();
    let schema = FFI_ArrowSchema::try_from(data.data_type()).map_err(value_error)?;
    let array = FFI_ArrowArray::new(&data);
    let schema = PyCapsule::new_with_value(py, schema, SCHEMA)?;
    let array = PyCapsule::new_with_value(py, array, ARRAY)?;
    PyTuple::new(py, [schema.into_any(), array.into_any()])
}

/// A `pyarrow.Array` viewing `array` without copying.
pub fn to_pyarrow<'py>(py: Python<'py>, array: &dyn Array) -> PyResult<Bound<'py, PyAny>> {
    let capsules = array_capsules(py, array)?;
    py.import("pyarrow")?
        .getattr("Array")?
        .call_method1("_import_from_c_capsule", capsules)
}

/// A `pyarrow.RecordBatch` viewing `batch` without copying.
pub fn batch_to_pyarrow<'py>(py: Python<'py>, batch: &RecordBatch) -> PyResult<Bound<'py, PyAny>> {
    let capsules = array_capsules(py, &StructArray::from(batch.clone()))?;
    py.import("pyarrow")?
        .getattr("RecordBatch")?
        .call_method1("_import_from_c_capsule", capsules)
}

/// The Arrow array behind any object exporting `__arrow_c_array__` (pyarrow Array, ...);
/// chunked arrays (`__arrow_c_stream__`) are concatenated.
pub fn from_pyarrow(obj: &Bound<'_, PyAny>) -> PyResult<ArrayRef> {
    if !obj.hasattr("__arrow_c_array__")? {
        if obj.hasattr("combine_chunks")? {
            return from_pyarrow(&obj.call_method0("combine_chunks")?);
        }
        return Err(PyTypeError::new_err(format!(
            "expected an Arrow array, got {}",
            obj.get_type().name()?
        )));
    }
    let capsules = obj.call_method0("__arrow_c_array__")?;
    let (schema, array): (Bound<'_, PyCapsule>, Bound<'_, PyCapsule>) = capsules.extract()?;
    let schema_ptr = schema
        .pointer_checked(Some(SCHEMA))?
        .cast::<FFI_ArrowSchema>();
    let array_ptr = array.pointer_checked(Some(ARRAY))?.cast::<FFI_ArrowArray>();
    // SAFETY: the capsules are named per the PyCapsule interface, so they hold an
    // FFI_ArrowSchema and an FFI_ArrowArray. We move the array out (leaving a released one for
    // the capsule's destructor) and only borrow the schema.
    let data = unsafe {
        let array = FFI_ArrowArray::from_raw(array_ptr.as_ptr());
        from_ffi(array, schema_ptr.as_ref())
    }
    .map_err(value_error)?;
    Ok(make_array(data))
}

/// Schema and batches of an object exporting `__arrow_c_stream__` (pyarrow Table, ...).
pub fn import_stream(obj: &Bound<'_, PyAny>) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    if !obj.hasattr("__arrow_c_stream__")? {
        return Err(PyTypeError::new_err(format!(
            "expected Arrow data exporting __arrow_c_stream__, got {}",
            obj.get_type().name()?
        )));
    }
    let capsule = obj.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>()?;
    let ptr = capsule.pointer_checked(Some(STREAM))?;
    // SAFETY: the capsule is named `arrow_array_stream`, so it holds an FFI_ArrowArrayStream;
    // `from_raw` moves the stream out and leaves a released one behind for the capsule.
    let reader =
        unsafe { ArrowArrayStreamReader::from_raw(ptr.as_ptr().cast::<FFI_ArrowArrayStream>()) }
            .map_err(value_error)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(value_error)?;
    Ok((schema, batches))
}

/// The schema as an `arrow_schema` capsule, for `__arrow_c_schema__`.
pub fn schema_capsule<'py>(py: Python<'py>, schema: &Schema) -> PyResult<Bound<'py, PyCapsule>> {
    let schema = FFI_ArrowSchema::try_from(schema).map_err(value_error)?;
    PyCapsule::new_with_value(py, schema, SCHEMA)
}
