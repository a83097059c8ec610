//! `--udf-module`: Python UDFs registered on the executor by name, from the user's own files.
//!
//! Each file runs once in the main interpreter at start-up. Every module-level stock
//! datafusion-python UDF (`udf`, `udaf`, `udwf`, by call or by decorator) and every
//! `pickleball.udf` is registered under its name. Its code is read the way a client reads it, from the stock wheel's serialized
//! expression, so by-name UDFs run through the same path as inline ones.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use pickleball_codec::udf::{
    Convention, Lane, NamedUdf, NamedUdfs, StockPayload, stock_udf_in_expr,
};
use pyo3::prelude::*;
use pyo3::types::PyModule;

use super::errors::FromPy;

/// Runs a file and returns, for each UDF defined at its top level, the stock wheel's
/// serialization of a call to it.
const COLLECT: &str = r#"
import runpy

import datafusion

_KINDS = (datafusion.ScalarUDF, datafusion.AggregateUDF, datafusion.WindowUDF)


def _udf_behind(value):
    # The stock decorators return a plain function with the UDF in its closure.
    if isinstance(value, _KINDS):
        return value
    for cell in getattr(value, "__closure__", None) or ():
        try:
            contents = cell.cell_contents
        except ValueError:
            continue
        if isinstance(contents, _KINDS):
            return contents
    return None


def _row_wise(udf):
    # pickleball.udf objects: the plain function and lane, as a client would send them.
    if type(udf).__name__ == "RowUDF" and type(udf).__module__ == "pickleball.rowwise":
        import cloudpickle

        return cloudpickle.dumps(udf.func), udf.lane
    return None, None


def collect(path):
    namespace = runpy.run_path(path, run_name="__pickleball_udf_module__")
    found, seen = [], set()
    for value in namespace.values():
        udf = _udf_behind(value)
        if udf is not None and id(udf) not in seen:
            seen.add(id(udf))
            found.append((udf(datafusion.col("x")).to_bytes(), *_row_wise(udf)))
    return found
"#;

/// What `collect` returns per UDF: the serialized call, and for row-wise UDFs the pickled
/// function and lane.
type Collected = (Vec<u8>, Option<Vec<u8>>, Option<String>);

/// Loads the UDFs of every file in `paths` (later files override earlier names).
pub fn load(paths: &[PathBuf]) -> Result<NamedUdfs> {
    let mut named = NamedUdfs::default();
    if paths.is_empty() {
        return Ok(named);
    }
    let serialized: Vec<(PathBuf, Vec<Collected>)> = Python::attach(|py| {
        let module = PyModule::from_code(
            py,
            &CString::new(COLLECT).expect("no NUL in the collector"),
            c"pickleball_udf_module.py",
            c"pickleball_udf_module",
        )
        .map_err(DataFusionError::from_py)?;
        paths
            .iter()
            .map(|path| {
                let found = module
                    .call_method1("collect", (path.clone(),))
                    .and_then(|found| found.extract::<Vec<Collected>>())
                    .map_err(|e| {
                        let (kind, message, traceback) = super::errors::describe(py, &e);
                        DataFusionError::Configuration(format!(
                            "--udf-module {}: {kind}: {message}\n{traceback}",
                            path.display()
                        ))
                    })?;
                Ok((path.clone(), found))
            })
            .collect::<Result<_>>()
    })?;
    for (path, exprs) in serialized {
        if exprs.is_empty() {
            log::warn!(
                "--udf-module {}: no datafusion-python UDF at the module's top level",
                path.display()
            );
        }
        for (expr, rows, lane) in exprs {
            let (name, definition) = stock_udf_in_expr(&expr)?;
            let stock = StockPayload::parse(&name, &definition)?
                .ok_or_else(|| DataFusionError::Internal(format!("'{name}': no payload")))?;
            let udf = match rows {
                Some(function) => NamedUdf {
                    python: stock.python,
                    payload: Arc::from(function),
                    convention: Convention::Rows,
                    lane: match lane.as_deref() {
                        Some("main") => Lane::Main,
                        _ => Lane::SubInterpreter,
                    },
                },
                None => NamedUdf {
                    python: stock.python,
                    payload: Arc::from(stock.blob),
                    convention: Convention::Pyarrow,
                    lane: Lane::Main,
                },
            };
            named.insert(stock.family, name, udf);
        }
    }
    log::info!("UDFs registered by name: {}", named.describe().join(", "));
    Ok(named)
}
