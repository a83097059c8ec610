//! The logical extension codec used by client, scheduler and executors.

use std::sync::Arc;

use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::{Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, HigherOrderUDF, LogicalPlan};
use datafusion_proto::logical_plan::LogicalExtensionCodec;

use crate::memory_table::{
    DEFAULT_MAX_INLINE_TABLE_BYTES, decode_memory_table, encode_memory_table, is_memory_table_frame,
};
use crate::udf::{InlinePolicy, UdfDecoder};

/// Ballista's logical codec plus in-memory tables carried by value and Python UDFs.
///
/// Every method forwards to the wrapped [`BallistaLogicalExtensionCodec`] unless pickleball
/// handles the node itself.
#[derive(Debug)]
pub struct PythonLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
    max_inline_table_bytes: usize,
    udfs: UdfDecoder,
}

impl Default for PythonLogicalCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_INLINE_TABLE_BYTES)
    }
}

impl PythonLogicalCodec {
    /// A codec that refuses in-memory tables larger than `max_inline_table_bytes` once encoded.
    pub fn new(max_inline_table_bytes: usize) -> Self {
        Self {
            inner: BallistaLogicalExtensionCodec::default(),
            max_inline_table_bytes,
            udfs: UdfDecoder::planning("process", InlinePolicy::Allow),
        }
    }

    /// The same codec, turning Python UDF frames into UDFs with `udfs`.
    pub fn with_udfs(mut self, udfs: UdfDecoder) -> Self {
        self.udfs = udfs;
        self
    }
}

impl LogicalExtensionCodec for PythonLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        if is_memory_table_frame(buf) {
            return Ok(decode_memory_table(buf, schema)?);
        }
        self.inner
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(table) = node.downcast_ref::<MemTable>() {
            return encode_memory_table(table_ref, table, self.max_inline_table_bytes, buf);
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_higher_order_function(
        &self,
        name: &str,
        buf: &[u8],
    ) -> Result<Arc<HigherOrderUDF>> {
        self.inner.try_decode_higher_order_function(name, buf)
    }

    fn try_encode_higher_order_function(
        &self,
        node: &HigherOrderUDF,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.inner.try_encode_higher_order_function(node, buf)
    }

    crate::python_udf_codec_methods!();
}
