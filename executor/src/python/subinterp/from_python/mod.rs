//! Python return values into Arrow builders of the UDF's declared return type, one row at a
//! time (the inverse of `to_python`); `None` is null. Scalar rules are in `extract`.

mod containers;
mod finish;
mod runs;

use std::sync::Arc;

use datafusion::arrow::array::{
    BinaryBuilder, BinaryViewBuilder, BooleanBuilder, Decimal128Builder, FixedSizeBinaryBuilder,
    Float16Builder, Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder,
    Int64Builder, LargeBinaryBuilder, LargeStringBuilder, NullBufferBuilder, StringBuilder,
    StringViewBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, FieldRef, Float16Type, TimeUnit};
use pyo3::ffi;

use super::context::Context;
use super::extract::{self, Reason};
use super::ffi_util::{Gil, PyObj, is_none, repr_of, type_name};
use super::temporal::{floor_micros, from_micros};
use containers::{append_fields, append_items, dict_items};

type F16 = <Float16Type as datafusion::arrow::datatypes::ArrowPrimitiveType>::Native;

/// Whether a UDF may declare `data_type` as its return type; `Err` names the first
/// unsupported type.
pub(super) fn check(data_type: &DataType) -> Result<(), DataType> {
    use DataType::*;
    match data_type {
        scalar if super::converts_scalar(scalar) => Ok(()),
        List(f) | LargeList(f) | FixedSizeList(f, _) => check(f.data_type()),
        Map(f, _) => match f.data_type() {
            Struct(kv) if kv.len() == 2 => kv.iter().try_for_each(|f| check(f.data_type())),
            _ => Err(data_type.clone()),
        },
        Struct(fields) => fields.iter().try_for_each(|f| check(f.data_type())),
        other => Err(other.clone()),
    }
}

/// A returned value that does not fit the declared type (possibly deep inside a list,
/// struct or map): its repr and type, the Arrow type it should have had, and why not.
#[derive(Debug)]
pub(super) struct Mismatch {
    pub repr: String,
    pub type_name: String,
    pub expected: DataType,
    pub reason: Reason,
}

/// Appends converted Python values for one Arrow type.
pub(super) struct Writer {
    data_type: DataType,
    kind: Kind,
}

enum Kind {
    Null(usize),
    Bool(BooleanBuilder),
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F16(Float16Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Utf8(StringBuilder),
    LargeUtf8(LargeStringBuilder),
    Utf8View(StringViewBuilder),
    Binary(BinaryBuilder),
    LargeBinary(LargeBinaryBuilder),
    BinaryView(BinaryViewBuilder),
    FixedBinary(FixedSizeBinaryBuilder, usize),
    /// Date32, Time32 (values in the type's unit; the data type is applied at the end).
    Days32(Int32Builder),
    Time32(Int32Builder, TimeUnit),
    Date64(Int64Builder),
    Time64(Int64Builder, TimeUnit),
    Timestamp(Int64Builder, TimeUnit),
    Duration(Int64Builder, TimeUnit),
    Decimal(Decimal128Builder, u8, i8),
    List(Nested, Vec<i64>),
    FixedList(Nested, usize),
    Struct(Vec<PyObj>, Vec<Writer>, NullBufferBuilder),
    Map(Box<Writer>, Box<Writer>, Vec<i32>, NullBufferBuilder),
}

/// The child and validity of a list.
struct Nested {
    field: FieldRef,
    child: Box<Writer>,
    nulls: NullBufferBuilder,
}

impl Writer {
    /// A writer of `data_type` (which `check` accepted) for about `rows` values; `None` with
    /// a Python exception set if a struct field name cannot be made.
    pub(super) fn new(py: Gil, data_type: &DataType, rows: usize) -> Option<Self> {
        use DataType as T;
        let nested = |field: &FieldRef, child_rows: usize| -> Option<Nested> {
            Some(Nested {
                field: Arc::clone(field),
                child: Box::new(Writer::new(py, field.data_type(), child_rows)?),
                nulls: NullBufferBuilder::new(rows),
            })
        };
        let kind = match data_type {
            T::Null => Kind::Null(0),
            T::Boolean => Kind::Bool(BooleanBuilder::with_capacity(rows)),
            T::Int8 => Kind::I8(Int8Builder::with_capacity(rows)),
            T::Int16 => Kind::I16(Int16Builder::with_capacity(rows)),
            T::Int32 => Kind::I32(Int32Builder::with_capacity(rows)),
            T::Int64 => Kind::I64(Int64Builder::with_capacity(rows)),
            T::UInt8 => Kind::U8(UInt8Builder::with_capacity(rows)),
            T::UInt16 => Kind::U16(UInt16Builder::with_capacity(rows)),
            T::UInt32 => Kind::U32(UInt32Builder::with_capacity(rows)),
            T::UInt64 => Kind::U64(UInt64Builder::with_capacity(rows)),
            T::Float16 => Kind::F16(Float16Builder::with_capacity(rows)),
            T::Float32 => Kind::F32(Float32Builder::with_capacity(rows)),
            T::Float64 => Kind::F64(Float64Builder::with_capacity(rows)),
            T::Utf8 => Kind::Utf8(StringBuilder::with_capacity(rows, rows * 8)),
            T::LargeUtf8 => Kind::LargeUtf8(LargeStringBuilder::with_capacity(rows, rows * 8)),
            T::Utf8View => Kind::Utf8View(StringViewBuilder::with_capacity(rows)),
            T::Binary => Kind::Binary(BinaryBuilder::with_capacity(rows, rows * 8)),
            T::LargeBinary => Kind::LargeBinary(LargeBinaryBuilder::with_capacity(rows, rows * 8)),
            T::BinaryView => Kind::BinaryView(BinaryViewBuilder::with_capacity(rows)),
            T::FixedSizeBinary(n) => Kind::FixedBinary(
                FixedSizeBinaryBuilder::with_capacity(rows, *n),
                usize::try_from(*n).ok()?,
            ),
            T::Date32 => Kind::Days32(Int32Builder::with_capacity(rows)),
            T::Time32(unit) => Kind::Time32(Int32Builder::with_capacity(rows), *unit),
            T::Date64 => Kind::Date64(Int64Builder::with_capacity(rows)),
            T::Time64(unit) => Kind::Time64(Int64Builder::with_capacity(rows), *unit),
            T::Timestamp(unit, _) => Kind::Timestamp(Int64Builder::with_capacity(rows), *unit),
            T::Duration(unit) => Kind::Duration(Int64Builder::with_capacity(rows), *unit),
            T::Decimal128(p, s) => Kind::Decimal(
                Decimal128Builder::with_capacity(rows).with_data_type(data_type.clone()),
                *p,
                *s,
            ),
            T::List(f) | T::LargeList(f) => Kind::List(nested(f, rows)?, vec![0]),
            T::FixedSizeList(f, n) => {
                let n = usize::try_from(*n).ok()?;
                Kind::FixedList(nested(f, rows * n)?, n)
            }
            T::Struct(fields) => {
                let mut names = Vec::with_capacity(fields.len());
                let mut children = Vec::with_capacity(fields.len());
                for field in fields {
                    names.push(PyObj::owned(
                        py,
                        super::ffi_util::unicode(py, field.name()),
                    )?);
                    children.push(Writer::new(py, field.data_type(), rows)?);
                }
                Kind::Struct(names, children, NullBufferBuilder::new(rows))
            }
            T::Map(entries, _) => {
                let T::Struct(kv) = entries.data_type() else {
                    return None;
                };
                let keys = Writer::new(py, kv.first()?.data_type(), rows)?;
                let values = Writer::new(py, kv.get(1)?.data_type(), rows)?;
                Kind::Map(
                    Box::new(keys),
                    Box::new(values),
                    vec![0],
                    NullBufferBuilder::new(rows),
                )
            }
            _ => return None,
        };
        Some(Writer {
            data_type: data_type.clone(),
            kind,
        })
    }

    /// Appends a null.
    pub(super) fn append_null(&mut self) {
        match &mut self.kind {
            Kind::Null(n) => *n += 1,
            Kind::Bool(b) => b.append_null(),
            Kind::I8(b) => b.append_null(),
            Kind::I16(b) => b.append_null(),
            Kind::I32(b) | Kind::Days32(b) | Kind::Time32(b, _) => b.append_null(),
            Kind::I64(b)
            | Kind::Date64(b)
            | Kind::Time64(b, _)
            | Kind::Timestamp(b, _)
            | Kind::Duration(b, _) => b.append_null(),
            Kind::U8(b) => b.append_null(),
            Kind::U16(b) => b.append_null(),
            Kind::U32(b) => b.append_null(),
            Kind::U64(b) => b.append_null(),
            Kind::F16(b) => b.append_null(),
            Kind::F32(b) => b.append_null(),
            Kind::F64(b) => b.append_null(),
            Kind::Utf8(b) => b.append_null(),
            Kind::LargeUtf8(b) => b.append_null(),
            Kind::Utf8View(b) => b.append_null(),
            Kind::Binary(b) => b.append_null(),
            Kind::LargeBinary(b) => b.append_null(),
            Kind::BinaryView(b) => b.append_null(),
            Kind::FixedBinary(b, _) => b.append_null(),
            Kind::Decimal(b, _, _) => b.append_null(),
            Kind::List(list, offsets) => {
                offsets.push(*offsets.last().expect("starts with 0"));
                list.nulls.append_null();
            }
            Kind::FixedList(list, n) => {
                for _ in 0..*n {
                    list.child.append_null();
                }
                list.nulls.append_null();
            }
            Kind::Struct(_, children, nulls) => {
                children.iter_mut().for_each(Writer::append_null);
                nulls.append_null();
            }
            Kind::Map(_, _, offsets, nulls) => {
                offsets.push(*offsets.last().expect("starts with 0"));
                nulls.append_null();
            }
        }
    }

    /// Appends items `0..len` of `list` (a live list of at least `len` items), each converted
    /// like [`Writer::append`]; on a mismatch, the item's index with it.
    pub(super) fn append_list(
        &mut self,
        py: Gil,
        ctx: &Context,
        list: *mut ffi::PyObject,
        len: usize,
    ) -> Result<(), (usize, Mismatch)> {
        let mut i = 0;
        while i < len {
            i += runs::append_run(&mut self.kind, py, list, i..len);
            if i < len {
                // SAFETY: `i < len`, within the list; borrowed while the caller holds it.
                let obj = unsafe { ffi::PyList_GET_ITEM(list, i as ffi::Py_ssize_t) };
                self.append(py, ctx, obj).map_err(|m| (i, m))?;
                i += 1;
            }
        }
        Ok(())
    }

    /// Appends `obj` converted to this writer's type (`None` appends a null).
    pub(super) fn append(
        &mut self,
        py: Gil,
        ctx: &Context,
        obj: *mut ffi::PyObject,
    ) -> Result<(), Mismatch> {
        if is_none(obj) {
            self.append_null();
            return Ok(());
        }
        let result = match &mut self.kind {
            Kind::Null(_) => Err("expected None"),
            Kind::Bool(b) => extract::bool_of(obj).map(|v| b.append_value(v)),
            Kind::I8(b) => int(py, obj).map(|v| b.append_value(v)),
            Kind::I16(b) => int(py, obj).map(|v| b.append_value(v)),
            Kind::I32(b) => int(py, obj).map(|v| b.append_value(v)),
            Kind::I64(b) => extract::i64_of(py, obj).map(|v| b.append_value(v)),
            Kind::U8(b) => int(py, obj).map(|v| b.append_value(v)),
            Kind::U16(b) => int(py, obj).map(|v| b.append_value(v)),
            Kind::U32(b) => int(py, obj).map(|v| b.append_value(v)),
            Kind::U64(b) => extract::u64_of(py, obj).map(|v| b.append_value(v)),
            Kind::F16(b) => extract::f64_of(py, obj).map(|v| b.append_value(F16::from_f64(v))),
            Kind::F32(b) => extract::f64_of(py, obj).map(|v| b.append_value(v as f32)),
            Kind::F64(b) => extract::f64_of(py, obj).map(|v| b.append_value(v)),
            Kind::Utf8(b) => extract::str_of(py, obj).map(|v| b.append_value(v)),
            Kind::LargeUtf8(b) => extract::str_of(py, obj).map(|v| b.append_value(v)),
            Kind::Utf8View(b) => extract::str_of(py, obj).map(|v| b.append_value(v)),
            Kind::Binary(b) => extract::bytes_of(obj).map(|v| b.append_value(v)),
            Kind::LargeBinary(b) => extract::bytes_of(obj).map(|v| b.append_value(v)),
            Kind::BinaryView(b) => extract::bytes_of(obj).map(|v| b.append_value(v)),
            Kind::FixedBinary(b, n) => extract::bytes_of(obj).and_then(|v| {
                if v.len() != *n {
                    return Err("wrong number of bytes");
                }
                b.append_value(v).map_err(|_| "wrong number of bytes")
            }),
            Kind::Days32(b) => extract::date_of(py, ctx, obj)
                .and_then(|d| i32::try_from(d).map_err(|_| "out of range"))
                .map(|d| b.append_value(d)),
            Kind::Date64(b) => extract::date_of(py, ctx, obj)
                .and_then(|d| d.checked_mul(86_400_000).ok_or("out of range"))
                .map(|d| b.append_value(d)),
            Kind::Time32(b, unit) => extract::time_micros(py, ctx, obj)
                .and_then(|us| from_micros(us, *unit).ok_or("out of range"))
                .and_then(|v| i32::try_from(v).map_err(|_| "out of range"))
                .map(|v| b.append_value(v)),
            Kind::Time64(b, unit) => extract::time_micros(py, ctx, obj)
                .and_then(|us| from_micros(us, *unit).ok_or("out of range"))
                .map(|v| b.append_value(v)),
            Kind::Timestamp(b, unit) => extract::datetime_micros(py, ctx, obj)
                .and_then(|us| floor_micros(us, *unit).ok_or("out of range"))
                .map(|v| b.append_value(v)),
            Kind::Duration(b, unit) => {
                extract::duration_of(py, ctx, obj, *unit).map(|v| b.append_value(v))
            }
            Kind::Decimal(b, p, s) => {
                extract::decimal_of(py, ctx, obj, *p, *s).map(|v| b.append_value(v))
            }
            Kind::List(list, offsets) => match append_items(py, ctx, &mut list.child, obj, None)? {
                Some(count) => {
                    offsets.push(offsets.last().expect("starts with 0") + count as i64);
                    list.nulls.append_non_null();
                    Ok(())
                }
                None => Err("expected a list or tuple"),
            },
            Kind::FixedList(list, n) => {
                match append_items(py, ctx, &mut list.child, obj, Some(*n))? {
                    Some(_) => {
                        list.nulls.append_non_null();
                        Ok(())
                    }
                    None => Err("expected a list or tuple of the fixed size"),
                }
            }
            Kind::Struct(names, children, nulls) => {
                append_fields(py, ctx, names, children, obj)?.map(|()| nulls.append_non_null())
            }
            Kind::Map(keys, values, offsets, nulls) => match dict_items(py, obj) {
                None => Err("expected a dict"),
                Some(pairs) if pairs.iter().any(|(k, _)| is_none(k.as_ptr())) => {
                    Err("map keys cannot be None")
                }
                Some(pairs) => {
                    for (key, value) in &pairs {
                        keys.append(py, ctx, key.as_ptr())?;
                        values.append(py, ctx, value.as_ptr())?;
                    }
                    offsets.push(offsets.last().expect("starts with 0") + pairs.len() as i32);
                    nulls.append_non_null();
                    Ok(())
                }
            },
        };
        result.map_err(|reason| self.mismatch(py, obj, reason))
    }

    fn mismatch(&self, py: Gil, obj: *mut ffi::PyObject, reason: Reason) -> Mismatch {
        Mismatch {
            repr: repr_of(py, obj),
            type_name: type_name(py, obj),
            expected: self.data_type.clone(),
            reason,
        }
    }
}

/// An int range-checked into a narrower integer type.
fn int<T: TryFrom<i64>>(py: Gil, obj: *mut ffi::PyObject) -> Result<T, Reason> {
    T::try_from(extract::i64_of(py, obj)?).map_err(|_| "out of range")
}
