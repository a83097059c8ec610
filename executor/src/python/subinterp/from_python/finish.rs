//! The finished arrays of the writers, nested ones assembled from their children.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, FixedSizeListArray, GenericListArray, MapArray, NullArray, StructArray,
    make_array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Fields};
use datafusion::arrow::error::ArrowError;

use super::{Kind, Writer};

impl Writer {
    /// The array of everything appended.
    pub(in crate::python::subinterp) fn finish(self) -> Result<ArrayRef, ArrowError> {
        let data_type = self.data_type;
        let retyped = |array: &dyn Array| -> Result<ArrayRef, ArrowError> {
            let data = array
                .to_data()
                .into_builder()
                .data_type(data_type.clone())
                .build()?;
            Ok(make_array(data))
        };
        Ok(match self.kind {
            Kind::Null(n) => Arc::new(NullArray::new(n)),
            Kind::Bool(mut b) => Arc::new(b.finish()),
            Kind::I8(mut b) => Arc::new(b.finish()),
            Kind::I16(mut b) => Arc::new(b.finish()),
            Kind::I32(mut b) => Arc::new(b.finish()),
            Kind::I64(mut b) => Arc::new(b.finish()),
            Kind::U8(mut b) => Arc::new(b.finish()),
            Kind::U16(mut b) => Arc::new(b.finish()),
            Kind::U32(mut b) => Arc::new(b.finish()),
            Kind::U64(mut b) => Arc::new(b.finish()),
            Kind::F16(mut b) => Arc::new(b.finish()),
            Kind::F32(mut b) => Arc::new(b.finish()),
            Kind::F64(mut b) => Arc::new(b.finish()),
            Kind::Utf8(mut b) => Arc::new(b.finish()),
            Kind::LargeUtf8(mut b) => Arc::new(b.finish()),
            Kind::Utf8View(mut b) => Arc::new(b.finish()),
            Kind::Binary(mut b) => Arc::new(b.finish()),
            Kind::LargeBinary(mut b) => Arc::new(b.finish()),
            Kind::BinaryView(mut b) => Arc::new(b.finish()),
            Kind::FixedBinary(mut b, _) => Arc::new(b.finish()),
            Kind::Decimal(mut b, _, _) => Arc::new(b.finish()),
            Kind::Days32(mut b) | Kind::Time32(mut b, _) => retyped(&b.finish())?,
            Kind::Date64(mut b)
            | Kind::Time64(mut b, _)
            | Kind::Timestamp(mut b, _)
            | Kind::Duration(mut b, _) => retyped(&b.finish())?,
            Kind::List(mut list, offsets) => {
                let values = list.child.finish()?;
                let nulls = list.nulls.finish();
                if matches!(data_type, DataType::LargeList(_)) {
                    let offsets = OffsetBuffer::new(offsets.into());
                    Arc::new(GenericListArray::<i64>::try_new(
                        list.field, offsets, values, nulls,
                    )?)
                } else {
                    let offsets = offsets
                        .into_iter()
                        .map(i32::try_from)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| ArrowError::ComputeError("list too large for List".into()))?;
                    let offsets = OffsetBuffer::new(offsets.into());
                    Arc::new(GenericListArray::<i32>::try_new(
                        list.field, offsets, values, nulls,
                    )?)
                }
            }
            Kind::FixedList(mut list, n) => Arc::new(FixedSizeListArray::try_new(
                list.field,
                n as i32,
                list.child.finish()?,
                list.nulls.finish(),
            )?),
            Kind::Struct(_, children, mut nulls) => {
                let DataType::Struct(fields) = &data_type else {
                    unreachable!("struct writer of a struct type")
                };
                let len = nulls.len();
                let columns = children
                    .into_iter()
                    .map(Writer::finish)
                    .collect::<Result<_, _>>()?;
                Arc::new(StructArray::try_new_with_length(
                    fields.clone(),
                    columns,
                    nulls.finish(),
                    len,
                )?)
            }
            Kind::Map(keys, values, offsets, mut nulls) => {
                let DataType::Map(entries, ordered) = &data_type else {
                    unreachable!("map writer of a map type")
                };
                let DataType::Struct(kv) = entries.data_type() else {
                    unreachable!("checked in Writer::new")
                };
                let kv: Fields = kv.clone();
                let columns = vec![keys.finish()?, values.finish()?];
                let entries_array = StructArray::try_new(kv, columns, None)?;
                Arc::new(MapArray::try_new(
                    Arc::clone(entries),
                    OffsetBuffer::new(offsets.into()),
                    entries_array,
                    nulls.finish(),
                    *ordered,
                )?)
            }
        })
    }
}
