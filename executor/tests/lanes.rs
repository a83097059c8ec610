//! The lane a row-wise UDF runs in: the sub-interpreter pool where this Python has own-GIL
//! interpreters (3.12+), else the main interpreter, with the same results. Built and run
//! against any Python the executor builds with (`make test` runs it with 3.13).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, Volatility};
use pickleball_codec::udf::{
    Convention, Lane, PythonRuntime, UdfFamily, UdfFrame, UdfSignature, WindowFlags,
};
use pickleball_executor::python::ExecutorRuntime;
use pyo3::prelude::*;

mod common;
use common::payload;

/// `f(x)`: `"<OS thread name>:<2x>"`, so a result tells where it was computed.
const WHERE: &str = r#"
def f(x):
    import threading
    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as comm:
        return f"{comm.read().strip()}:{2 * x}"
"#;

fn frame(name: &str, source: &str) -> Arc<UdfFrame> {
    let (_, bytes) = payload(source);
    let python = Python::attach(|py| {
        let v = py.version_info();
        (v.major, v.minor)
    });
    let signature = UdfSignature {
        family: UdfFamily::Scalar,
        name: name.into(),
        inputs: vec![Arc::new(Field::new("x", DataType::Int64, true))],
        returns: Arc::new(Field::new(name, DataType::Utf8, true)),
        state: vec![],
        volatility: Volatility::Immutable,
        lane: Lane::SubInterpreter,
        convention: Convention::Rows,
        window: WindowFlags::default(),
    };
    Arc::new(UdfFrame::encode(signature, python, &bytes).expect("encode the frame"))
}

fn call(runtime: &ExecutorRuntime, frame: &Arc<UdfFrame>, input: ArrayRef) -> Vec<String> {
    let rows = input.len();
    let args = ScalarFunctionArgs {
        args: vec![ColumnarValue::Array(input)],
        arg_fields: frame.signature.inputs.clone(),
        number_rows: rows,
        return_field: Arc::clone(&frame.signature.returns),
        config_options: Arc::new(ConfigOptions::default()),
    };
    let ColumnarValue::Array(out) = runtime.invoke_scalar(frame, args).expect("the UDF runs")
    else {
        panic!("a row-wise UDF returns an array");
    };
    out.as_string::<i32>()
        .iter()
        .map(|v| v.expect("no nulls").to_owned())
        .collect()
}

#[test]
fn row_wise_udfs_run_on_sub_interpreters_only_where_python_has_them() {
    let frame = frame("where_am_i", WHERE);
    let input: ArrayRef = Arc::new(Int64Array::from_iter_values(0..3000));
    let doubled: Vec<String> = (0..3000).map(|x| (2 * x).to_string()).collect();

    for (size, pooled) in [(2, cfg!(Py_3_12)), (0, false)] {
        let runtime = ExecutorRuntime::new(size);
        assert_eq!(runtime.pool().is_some(), pooled, "pool of {size}");
        let got = call(&runtime, &frame, Arc::clone(&input));
        let (threads, values): (Vec<&str>, Vec<&str>) = got
            .iter()
            .map(|v| v.rsplit_once(':').expect("thread:value"))
            .unzip();
        assert_eq!(values, doubled, "pool of {size}");
        let in_pool = threads
            .iter()
            .map(|t| t.starts_with("pickleball-subi"))
            .collect::<std::collections::HashSet<_>>();
        assert_eq!(in_pool, [pooled].into(), "pool of {size}: {threads:?}");
        runtime.stop_pool();
    }
}
