//! In-memory tables carried by value inside a plan.
//!
//! A cluster shares no filesystem with the client, so a table the user built from Python objects
//! (`from_pydict`, `from_arrow`, `register_record_batches`, ...) travels inside the plan as Arrow
//! IPC. The frame is `MAGIC`, a little-endian `u32` partition count, then per partition a
//! little-endian `u64` length and one Arrow IPC stream (schema + batches).

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::MemTable;
use datafusion::common::{DataFusionError, Result, TableReference};

/// Default upper bound on the serialized size of one in-memory table inside a plan.
pub const DEFAULT_MAX_INLINE_TABLE_BYTES: usize = 256 * 1024 * 1024;

/// Marks our frame, so foreign custom-table bytes are never mistaken for one of ours.
const MAGIC: &[u8; 8] = b"PBMEMT01";

/// True when `buf` starts with our in-memory table frame.
pub fn is_memory_table_frame(buf: &[u8]) -> bool {
    buf.starts_with(MAGIC)
}

fn too_large(table: &TableReference, size: usize, limit: usize) -> DataFusionError {
    const MIB: f64 = 1024.0 * 1024.0;
    DataFusionError::Plan(format!(
        "in-memory table '{table}' is {:.1} MiB once serialized, over the {:.1} MiB limit for \
         tables carried inside a plan (setting pickleball.max_inline_table_bytes). Write the data \
         to Parquet files on storage every executor can read (a shared path or an object store \
         such as S3) and register those instead, or raise the limit.",
        size as f64 / MIB,
        limit as f64 / MIB
    ))
}

/// Appends the by-value encoding of `table` to `buf`, failing past `limit` bytes.
pub fn encode_memory_table(
    table_ref: &TableReference,
    table: &MemTable,
    limit: usize,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let start = buf.len();
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(table.batches.len() as u32).to_le_bytes());
    let schema = datafusion::catalog::TableProvider::schema(table);
    for partition in &table.batches {
        let batches = partition.try_read().map_err(|_| {
            DataFusionError::Execution(format!(
                "in-memory table '{table_ref}' is being written to while the plan is encoded"
            ))
        })?;
        let len_at = buf.len();
        buf.extend_from_slice(&0u64.to_le_bytes());
        let body_at = buf.len();
        {
            let mut writer = StreamWriter::try_new(&mut *buf, &schema)?;
            for batch in batches.iter() {
                writer.write(batch)?;
                if buf_len_of(&writer) - start > limit {
                    return Err(too_large(table_ref, buf_len_of(&writer) - start, limit));
                }
            }
            writer.finish()?;
        }
        let body_len = (buf.len() - body_at) as u64;
        buf[len_at..body_at].copy_from_slice(&body_len.to_le_bytes());
    }
    let size = buf.len() - start;
    if size > limit {
        return Err(too_large(table_ref, size, limit));
    }
    Ok(())
}

fn buf_len_of(writer: &StreamWriter<&mut Vec<u8>>) -> usize {
    writer.get_ref().len()
}

/// Decodes a frame written by [`encode_memory_table`] into a [`MemTable`] with `schema`.
pub fn decode_memory_table(buf: &[u8], schema: SchemaRef) -> Result<Arc<MemTable>> {
    let malformed = |what: &str| {
        DataFusionError::Internal(format!("malformed in-memory table in plan: {what}"))
    };
    let rest = buf
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| malformed("bad magic"))?;
    let (count, mut rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| malformed("truncated partition count"))?;
    let count = u32::from_le_bytes(*count) as usize;
    let mut partitions = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let (len, tail) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| malformed("truncated partition length"))?;
        let len = usize::try_from(u64::from_le_bytes(*len))
            .map_err(|_| malformed("partition length overflows"))?;
        if tail.len() < len {
            return Err(malformed("truncated partition"));
        }
        let (body, tail) = tail.split_at(len);
        let reader = StreamReader::try_new(Cursor::new(body), None)?;
        let batches = reader.collect::<std::result::Result<Vec<RecordBatch>, _>>()?;
        partitions.push(batches);
        rest = tail;
    }
    if partitions.is_empty() {
        partitions.push(vec![]);
    }
    Ok(Arc::new(MemTable::try_new(schema, partitions)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn sample(rows: i64) -> (SchemaRef, Vec<Vec<RecordBatch>>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows)),
                Arc::new(StringArray::from_iter(
                    (0..rows).map(|i| (i % 3 != 0).then(|| format!("row{i}"))),
                )),
            ],
        )
        .unwrap();
        (
            schema,
            vec![vec![batch.clone()], vec![batch.slice(1, 2), batch]],
        )
    }

    #[test]
    fn round_trips_partitions_and_nulls() {
        let (schema, parts) = sample(10);
        let table = MemTable::try_new(schema.clone(), parts.clone()).unwrap();
        let mut buf = vec![];
        encode_memory_table(&"t".into(), &table, usize::MAX, &mut buf).unwrap();
        assert!(is_memory_table_frame(&buf));
        let back = decode_memory_table(&buf, schema).unwrap();
        let got: Vec<Vec<RecordBatch>> = back
            .batches
            .iter()
            .map(|p| p.try_read().unwrap().clone())
            .collect();
        assert_eq!(got, parts);
    }

    #[test]
    fn refuses_tables_over_the_limit_naming_the_table() {
        let (schema, parts) = sample(10_000);
        let table = MemTable::try_new(schema, parts).unwrap();
        let err = encode_memory_table(&"trips".into(), &table, 1024, &mut vec![]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("'trips'"), "{msg}");
        assert!(msg.contains("Parquet"), "{msg}");
    }

    #[test]
    fn truncated_frames_are_errors_not_panics() {
        let (schema, parts) = sample(5);
        let table = MemTable::try_new(schema.clone(), parts).unwrap();
        let mut buf = vec![];
        encode_memory_table(&"t".into(), &table, usize::MAX, &mut buf).unwrap();
        for cut in 0..buf.len() {
            let _ = decode_memory_table(&buf[..cut], schema.clone());
        }
        assert!(decode_memory_table(&buf[..buf.len() - 1], schema).is_err());
    }
}
