//! datafusion-python's own inline UDF format, which pickleball reads but never runs as is.
//!
//! The stock wheel writes `<family 7 bytes><wire version u8 = 1><python major u8><python minor
//! u8><cloudpickle blob>`, where the blob unpickles to a tuple whose second item is the callable.
//! pickleball keeps that blob as its own payload: clients translate it into our frame, and
//! executors take it from the UDFs of a `--udf-module`.

use datafusion::common::{DataFusionError, Result};
use datafusion_proto::protobuf::LogicalExprNode;
use datafusion_proto::protobuf::logical_expr_node::ExprType;
use prost::Message;

use super::frame::UdfFamily;

/// Magic of each family in the stock format.
const STOCK_MAGIC: [(&[u8; 7], UdfFamily); 3] = [
    (b"DFPYUDF", UdfFamily::Scalar),
    (b"DFPYUDA", UdfFamily::Aggregate),
    (b"DFPYUDW", UdfFamily::Window),
];

/// The only stock wire version this build reads.
const STOCK_WIRE_VERSION: u8 = 1;

/// A stock inline payload, split into its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockPayload<'a> {
    /// Family named by the magic.
    pub family: UdfFamily,
    /// Python (major, minor) that pickled the blob.
    pub python: (u8, u8),
    /// The cloudpickle blob (a tuple: name, callable, schemas..., volatility).
    pub blob: &'a [u8],
}

impl<'a> StockPayload<'a> {
    /// True when `buf` starts like a stock payload.
    pub fn is_stock(buf: &[u8]) -> bool {
        STOCK_MAGIC.iter().any(|(magic, _)| buf.starts_with(*magic))
    }

    /// Splits the stock payload of UDF `name`; `Ok(None)` if `buf` is not in the stock format.
    pub fn parse(name: &str, buf: &'a [u8]) -> Result<Option<Self>> {
        let Some((_, family)) = STOCK_MAGIC
            .iter()
            .find(|(magic, _)| buf.starts_with(*magic))
        else {
            return Ok(None);
        };
        let bad = |what: String| {
            DataFusionError::Plan(format!(
                "Python UDF '{name}': unreadable datafusion-python payload ({what})"
            ))
        };
        if buf.len() < 10 {
            return Err(bad("truncated".to_string()));
        }
        if buf[7] != STOCK_WIRE_VERSION {
            return Err(bad(format!(
                "unknown wire version {}; this pickleball reads datafusion-python 55's version \
                 {STOCK_WIRE_VERSION}",
                buf[7]
            )));
        }
        Ok(Some(Self {
            family: *family,
            python: (buf[8], buf[9]),
            blob: &buf[10..],
        }))
    }
}

/// The name and stock payload of the Python UDF called at the top of an expression serialized
/// by datafusion-python (`Expr.to_bytes()`), e.g. `f(col("x"))` for a UDF `f`.
pub fn stock_udf_in_expr(bytes: &[u8]) -> Result<(String, Vec<u8>)> {
    let node = LogicalExprNode::decode(bytes)
        .map_err(|e| DataFusionError::Plan(format!("not a serialized expression: {e}")))?;
    let found = match node.expr_type {
        Some(ExprType::ScalarUdfExpr(call)) => Some((call.fun_name, call.fun_definition)),
        Some(ExprType::AggregateUdfExpr(call)) => Some((call.fun_name, call.fun_definition)),
        Some(ExprType::WindowExpr(call)) => {
            use datafusion_proto::protobuf::window_expr_node::WindowFunction;
            match call.window_function {
                Some(WindowFunction::Udwf(name)) => Some((name, call.fun_definition)),
                _ => None,
            }
        }
        _ => None,
    };
    match found {
        Some((name, Some(definition))) if StockPayload::is_stock(&definition) => {
            Ok((name, definition))
        }
        Some((name, _)) => Err(DataFusionError::Plan(format!(
            "'{name}' is not a Python UDF of datafusion-python (no inline payload)"
        ))),
        None => Err(DataFusionError::Plan(
            "the expression does not call a user-defined function".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_stock_prefix() {
        let buf = b"DFPYUDA\x01\x03\x0dBLOB";
        let stock = StockPayload::parse("f", buf).unwrap().unwrap();
        assert_eq!(stock.family, UdfFamily::Aggregate);
        assert_eq!(stock.python, (3, 13));
        assert_eq!(stock.blob, b"BLOB");
        assert_eq!(StockPayload::parse("f", b"PBPYSCL...").unwrap(), None);
        let err = StockPayload::parse("f", b"DFPYUDF\x02\x03\x0d").unwrap_err();
        assert!(err.to_string().contains("unknown wire version 2"), "{err}");
        let err = StockPayload::parse("f", b"DFPYUDF").unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn finds_the_udf_of_an_expression() {
        use datafusion_proto::protobuf::ScalarUdfExprNode;
        let node = LogicalExprNode {
            expr_type: Some(ExprType::ScalarUdfExpr(ScalarUdfExprNode {
                fun_name: "twice".to_string(),
                args: vec![],
                fun_definition: Some(b"DFPYUDF\x01\x03\x0dX".to_vec()),
            })),
        };
        let (name, definition) = stock_udf_in_expr(&node.encode_to_vec()).unwrap();
        assert_eq!(name, "twice");
        assert_eq!(definition, b"DFPYUDF\x01\x03\x0dX");
        let err = stock_udf_in_expr(b"\xff\xff").unwrap_err();
        assert!(
            err.to_string().contains("not a serialized expression"),
            "{err}"
        );
    }
}
