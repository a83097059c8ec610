//! The stock wheel's inline Python UDFs (`DFPYUDF`/`DFPYUDA`/`DFPYUDW`), re-encoded in our
//! frame on the client, where unpickling runs only the user's own code.
//!
//! The stock payload is `<family 7 bytes><wire version u8 = 1><python major u8><python minor
//! u8><cloudpickle blob>`; the blob unpickles to a tuple holding the name, the callable, Arrow
//! IPC schemas of arguments, result (and aggregate state) and the volatility. We read those to
//! build the header, and keep the blob itself as our payload.

use std::io::Cursor;

use datafusion::arrow::datatypes::FieldRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::common::{DataFusionError, Result};
use pickleball_codec::udf::{
    Convention, ForeignUdfTranslator, Lane, StockPayload, UdfFamily, UdfFrame, UdfSignature,
    WindowFlags, parse_volatility,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// What `pickleball._udf_wire.describe` tells about a stock payload: name, argument, return
/// and state schemas, volatility, window flags, convention, lane, row-wise payload.
type Described = (
    String,
    Vec<u8>,
    Vec<u8>,
    Option<Vec<u8>>,
    String,
    u32,
    String,
    String,
    Option<Vec<u8>>,
);

/// Translates stock payloads by asking `pickleball._udf_wire.describe` what they hold.
#[derive(Debug, Default)]
pub struct StockUdfTranslator {
    /// Send UDFs by name: the header only, no payload (the client disabled inlining).
    pub by_name: bool,
}

fn fields(ipc: &[u8]) -> Result<Vec<FieldRef>> {
    let reader = StreamReader::try_new(Cursor::new(ipc), None)?;
    Ok(reader.schema().fields().iter().cloned().collect())
}

impl ForeignUdfTranslator for StockUdfTranslator {
    fn translate(&self, family: UdfFamily, name: &str, buf: &[u8]) -> Result<UdfFrame> {
        let bad = |what: &str| {
            DataFusionError::Plan(format!(
                "Python UDF '{name}': unreadable datafusion-python payload ({what})"
            ))
        };
        let stock = StockPayload::parse(name, buf)?.ok_or_else(|| bad("not a stock payload"))?;
        let described = Python::attach(|py| -> PyResult<Described> {
            py.import("pickleball._udf_wire")?
                .call_method1(
                    "describe",
                    (family.to_string(), PyBytes::new(py, stock.blob)),
                )?
                .extract()
        })
        .map_err(|e| bad(&e.to_string()))?;
        let (udf_name, inputs, returns, state, volatility, window, convention, lane, rows) =
            described;
        let returns = fields(&returns)?
            .into_iter()
            .next()
            .ok_or_else(|| bad("no return field"))?;
        let signature = UdfSignature {
            family,
            name: udf_name,
            inputs: fields(&inputs)?,
            returns,
            state: state
                .as_deref()
                .map(fields)
                .transpose()?
                .unwrap_or_default(),
            volatility: parse_volatility(&volatility)?,
            lane: match lane.as_str() {
                "subinterpreter" => Lane::SubInterpreter,
                _ => Lane::Main,
            },
            convention: match convention.as_str() {
                "rows" => Convention::Rows,
                _ => Convention::Pyarrow,
            },
            window: WindowFlags(window),
        };
        // Row-wise UDFs ship the plain function; stock ones the stock blob.
        let payload = match (self.by_name, &rows) {
            (true, _) => &[][..],
            (false, Some(function)) => function.as_slice(),
            (false, None) => stock.blob,
        };
        UdfFrame::encode(signature, stock.python, payload)
    }
}
