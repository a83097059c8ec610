//! Python UDFs inside plans: the wire format and the UDF implementations that carry it.
//!
//! The same three UDF types ([`PythonScalarUdf`], [`PythonAggregateUdf`], [`PythonWindowUdf`])
//! are used everywhere. On the scheduler they are opaque stand-ins: they plan correctly from the
//! frame's header (types, volatility) and re-encode byte for byte. On executors a
//! [`PythonRuntime`] is attached and they run.

mod coercion;
mod frame;
mod functions;
mod named;
mod policy;
mod stock;

pub use coercion::without_needless_casts;
pub use frame::{
    Convention, Lane, UdfFamily, UdfFrame, UdfHeader, UdfSignature, WIRE_VERSION, WindowFlags,
    parse_volatility,
};
pub use functions::{PythonAggregateUdf, PythonRuntime, PythonScalarUdf, PythonWindowUdf};
pub use named::{NamedUdf, NamedUdfs};
pub use policy::{ForeignUdfTranslator, InlinePolicy, UdfDecoder, encode_frame, frame_of};
pub use stock::{StockPayload, stock_udf_in_expr};

/// The six UDF methods of a Ballista extension codec: Python UDF frames are handled by
/// `self.udfs` (a [`UdfDecoder`]), everything else goes to `self.inner`.
#[macro_export]
macro_rules! python_udf_codec_methods {
    () => {
        fn try_decode_udf(
            &self,
            name: &str,
            buf: &[u8],
        ) -> datafusion::common::Result<std::sync::Arc<datafusion::logical_expr::ScalarUDF>> {
            match self.udfs.scalar(name, buf)? {
                Some(udf) => Ok(udf),
                None => self.inner.try_decode_udf(name, buf),
            }
        }

        fn try_encode_udf(
            &self,
            node: &datafusion::logical_expr::ScalarUDF,
            buf: &mut Vec<u8>,
        ) -> datafusion::common::Result<()> {
            if $crate::udf::encode_frame(node.inner().as_ref(), buf) {
                return Ok(());
            }
            self.inner.try_encode_udf(node, buf)
        }

        fn try_decode_udaf(
            &self,
            name: &str,
            buf: &[u8],
        ) -> datafusion::common::Result<std::sync::Arc<datafusion::logical_expr::AggregateUDF>> {
            match self.udfs.aggregate(name, buf)? {
                Some(udf) => Ok(udf),
                None => self.inner.try_decode_udaf(name, buf),
            }
        }

        fn try_encode_udaf(
            &self,
            node: &datafusion::logical_expr::AggregateUDF,
            buf: &mut Vec<u8>,
        ) -> datafusion::common::Result<()> {
            if $crate::udf::encode_frame(node.inner().as_ref(), buf) {
                return Ok(());
            }
            self.inner.try_encode_udaf(node, buf)
        }

        fn try_decode_udwf(
            &self,
            name: &str,
            buf: &[u8],
        ) -> datafusion::common::Result<std::sync::Arc<datafusion::logical_expr::WindowUDF>> {
            match self.udfs.window(name, buf)? {
                Some(udf) => Ok(udf),
                None => self.inner.try_decode_udwf(name, buf),
            }
        }

        fn try_encode_udwf(
            &self,
            node: &datafusion::logical_expr::WindowUDF,
            buf: &mut Vec<u8>,
        ) -> datafusion::common::Result<()> {
            if $crate::udf::encode_frame(node.inner().as_ref(), buf) {
                return Ok(());
            }
            self.inner.try_encode_udwf(node, buf)
        }
    };
}
