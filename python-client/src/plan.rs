//! Plans from the stock datafusion-python wheel, made ready for the cluster.
//!
//! The client plans with the stock `datafusion` wheel and hands us `LogicalPlan.to_bytes()`.
//! The stock encoder refuses in-memory tables, so the Python side registers each one as a
//! listing-table placeholder under [`MEMORY_PLACEHOLDER_ROOT`]; here we swap every placeholder
//! scan for a [`MemTable`] holding the real data, which our codec then carries by value.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::MemTable;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::{LogicalPlan, TableScan};
use datafusion::prelude::SessionContext;
use datafusion_proto::bytes::logical_plan_from_bytes_with_extension_codec;
use pickleball_codec::PythonLogicalCodec;
use pickleball_codec::udf::{InlinePolicy, UdfDecoder, without_needless_casts};

use crate::translate::StockUdfTranslator;

/// Directory name that marks a placeholder for an in-memory table; the Python side builds
/// placeholder paths as `/<root>/<id>/`.
pub const MEMORY_PLACEHOLDER_ROOT: &str = "__pickleball_memory__";

/// An in-memory table supplied by the client: schema and batches.
pub type MemoryTableData = (SchemaRef, Vec<RecordBatch>);

/// Decodes plan bytes written by the stock wheel; with `inline_udfs` false, Python UDFs are
/// re-encoded by name (header only), to run the code registered on the executors.
pub fn decode_plan(bytes: &[u8], ctx: &SessionContext, inline_udfs: bool) -> Result<LogicalPlan> {
    let translator = StockUdfTranslator {
        by_name: !inline_udfs,
    };
    let udfs = UdfDecoder {
        translator: Some(Arc::new(translator)),
        ..UdfDecoder::planning("client", InlinePolicy::Allow)
    };
    let codec = PythonLogicalCodec::default().with_udfs(udfs);
    let plan =
        logical_plan_from_bytes_with_extension_codec(bytes, ctx.task_ctx().as_ref(), &codec)?;
    // The stock wheel cast string columns to the UDFs' declared encoding; row-wise UDFs take
    // them as they are.
    without_needless_casts(plan)
}

/// The id of the in-memory table a scan reads, if the scan is one of our placeholders.
fn placeholder_id(scan: &TableScan) -> Option<String> {
    let provider = source_as_provider(&scan.source).ok()?;
    let listing = provider.downcast_ref::<ListingTable>()?;
    let path = listing.table_paths().first()?.as_str();
    let (_, tail) = path.split_once(&format!("/{MEMORY_PLACEHOLDER_ROOT}/"))?;
    Some(tail.trim_end_matches('/').to_string())
}

/// Every in-memory table id the plan reads, subqueries included.
pub fn memory_table_ids(plan: &LogicalPlan) -> Result<Vec<String>> {
    let mut ids = vec![];
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Some(id) = placeholder_id(scan)
            && !ids.contains(&id)
        {
            ids.push(id);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    Ok(ids)
}

/// Paths of the files and directories the plan's listing tables read (placeholders excluded).
pub fn listing_paths(plan: &LogicalPlan) -> Result<Vec<String>> {
    let mut paths = vec![];
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && placeholder_id(scan).is_none()
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(listing) = provider.downcast_ref::<ListingTable>()
        {
            for path in listing.table_paths() {
                let path = path.to_string();
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    Ok(paths)
}

/// Replaces each placeholder scan with a scan of the in-memory table it stands for.
pub fn inline_memory_tables(
    plan: LogicalPlan,
    tables: &HashMap<String, MemoryTableData>,
) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some(id) = placeholder_id(scan) else {
            return Ok(Transformed::no(node));
        };
        let (schema, batches) = tables.get(&id).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "in-memory table '{}' is no longer registered in this context",
                scan.table_name
            ))
        })?;
        let table = MemTable::try_new(schema.clone(), vec![batches.clone()])?;
        let mut scan = scan.clone();
        scan.source = provider_as_source(Arc::new(table));
        Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
    })
    .map(|t| t.data)
}
