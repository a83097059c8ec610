//! Arrow values to Python builtins, one row at a time, with the raw C API: ints, floats,
//! bools, `str`, `bytes`, `datetime` objects, `Decimal`, lists, dicts and `None`.

use std::ops::Range;

use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray, GenericByteArray,
    GenericByteViewArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    BinaryViewType, ByteArrayType, ByteViewType, DataType, Date32Type, Date64Type, Decimal128Type,
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float16Type, Float32Type, Float64Type, GenericBinaryType, GenericStringType, Int8Type,
    Int16Type, Int32Type, Int64Type, StringViewType, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};

use super::context::Context;
use super::ffi_util::{Gil, PyObj, boolean, dict_set, float, int, new_dict, uint};
use super::py_values::{bytes_of, date, decimal, duration, fill, list, string, time, timestamp};
use super::recycled::Recycled;
use super::temporal::to_micros;

type F16 = <Float16Type as datafusion::arrow::datatypes::ArrowPrimitiveType>::Native;

/// Whether values of `data_type` can be passed to a row-wise UDF; `Err` names the first
/// unsupported type.
pub(super) fn check(data_type: &DataType) -> Result<(), DataType> {
    use DataType::*;
    match data_type {
        scalar if super::converts_scalar(scalar) => Ok(()),
        List(f) | LargeList(f) | FixedSizeList(f, _) | Map(f, _) => check(f.data_type()),
        Struct(fields) => fields.iter().try_for_each(|f| check(f.data_type())),
        Dictionary(_, values) => check(values),
        other => Err(other.clone()),
    }
}

/// Reads the values of one array (an argument, or a nested child) as Python objects.
pub(super) struct Reader<'a> {
    nulls: Option<&'a NullBuffer>,
    kind: Kind<'a>,
}

/// List offsets of either width.
enum Offsets<'a> {
    Small(&'a [i32]),
    Large(&'a [i64]),
}

enum Kind<'a> {
    Null,
    Bool(&'a BooleanArray),
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
    F16(&'a [F16]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    Utf8(&'a GenericByteArray<GenericStringType<i32>>),
    LargeUtf8(&'a GenericByteArray<GenericStringType<i64>>),
    Utf8View(&'a GenericByteViewArray<StringViewType>),
    Binary(&'a GenericByteArray<GenericBinaryType<i32>>),
    LargeBinary(&'a GenericByteArray<GenericBinaryType<i64>>),
    BinaryView(&'a GenericByteViewArray<BinaryViewType>),
    FixedBinary(&'a FixedSizeBinaryArray),
    Date32(&'a [i32]),
    Date64(&'a [i64]),
    /// Values, unit and the `tzinfo` (None: naive).
    Timestamp(&'a [i64], TimeUnit, Option<PyObj>),
    Time32(&'a [i32], TimeUnit),
    Time64(&'a [i64], TimeUnit),
    Duration(&'a [i64], TimeUnit),
    Decimal(&'a [i128], i8),
    List(Offsets<'a>, Box<Reader<'a>>),
    FixedList(&'a FixedSizeListArray, Box<Reader<'a>>),
    Struct(Vec<(PyObj, Reader<'a>)>),
    Map(&'a [i32], Box<Reader<'a>>, Box<Reader<'a>>),
    Dictionary(Vec<usize>, Box<Reader<'a>>),
}

/// Why a reader could not be made.
pub(super) enum ReaderError {
    /// A Python exception is set (e.g. an unknown time zone).
    Python,
    /// The type is not supported (`check` should have refused it).
    Unsupported(DataType),
}

impl<'a> Reader<'a> {
    /// A reader of `array`'s values.
    pub(super) fn new(
        py: Gil,
        ctx: &mut Context,
        array: &'a dyn Array,
    ) -> Result<Self, ReaderError> {
        use DataType::*;
        let kind = match array.data_type() {
            Null => Kind::Null,
            Boolean => Kind::Bool(array.as_boolean()),
            Int8 => Kind::I8(array.as_primitive::<Int8Type>().values()),
            Int16 => Kind::I16(array.as_primitive::<Int16Type>().values()),
            Int32 => Kind::I32(array.as_primitive::<Int32Type>().values()),
            Int64 => Kind::I64(array.as_primitive::<Int64Type>().values()),
            UInt8 => Kind::U8(array.as_primitive::<UInt8Type>().values()),
            UInt16 => Kind::U16(array.as_primitive::<UInt16Type>().values()),
            UInt32 => Kind::U32(array.as_primitive::<UInt32Type>().values()),
            UInt64 => Kind::U64(array.as_primitive::<UInt64Type>().values()),
            Float16 => Kind::F16(array.as_primitive::<Float16Type>().values()),
            Float32 => Kind::F32(array.as_primitive::<Float32Type>().values()),
            Float64 => Kind::F64(array.as_primitive::<Float64Type>().values()),
            Utf8 => Kind::Utf8(array.as_string::<i32>()),
            LargeUtf8 => Kind::LargeUtf8(array.as_string::<i64>()),
            Utf8View => Kind::Utf8View(array.as_string_view()),
            Binary => Kind::Binary(array.as_binary::<i32>()),
            LargeBinary => Kind::LargeBinary(array.as_binary::<i64>()),
            BinaryView => Kind::BinaryView(array.as_binary_view()),
            FixedSizeBinary(_) => Kind::FixedBinary(array.as_fixed_size_binary()),
            Date32 => Kind::Date32(array.as_primitive::<Date32Type>().values()),
            Date64 => Kind::Date64(array.as_primitive::<Date64Type>().values()),
            Timestamp(unit, tz) => {
                let values = match unit {
                    TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
                    TimeUnit::Millisecond => {
                        array.as_primitive::<TimestampMillisecondType>().values()
                    }
                    TimeUnit::Microsecond => {
                        array.as_primitive::<TimestampMicrosecondType>().values()
                    }
                    TimeUnit::Nanosecond => {
                        array.as_primitive::<TimestampNanosecondType>().values()
                    }
                };
                let zone = match tz {
                    Some(tz) => Some(ctx.zone(py, tz).ok_or(ReaderError::Python)?),
                    None => None,
                };
                Kind::Timestamp(values, *unit, zone)
            }
            Time32(TimeUnit::Second) => Kind::Time32(
                array.as_primitive::<Time32SecondType>().values(),
                TimeUnit::Second,
            ),
            Time32(TimeUnit::Millisecond) => Kind::Time32(
                array.as_primitive::<Time32MillisecondType>().values(),
                TimeUnit::Millisecond,
            ),
            Time64(TimeUnit::Microsecond) => Kind::Time64(
                array.as_primitive::<Time64MicrosecondType>().values(),
                TimeUnit::Microsecond,
            ),
            Time64(TimeUnit::Nanosecond) => Kind::Time64(
                array.as_primitive::<Time64NanosecondType>().values(),
                TimeUnit::Nanosecond,
            ),
            Duration(unit) => {
                let values = match unit {
                    TimeUnit::Second => array.as_primitive::<DurationSecondType>().values(),
                    TimeUnit::Millisecond => {
                        array.as_primitive::<DurationMillisecondType>().values()
                    }
                    TimeUnit::Microsecond => {
                        array.as_primitive::<DurationMicrosecondType>().values()
                    }
                    TimeUnit::Nanosecond => array.as_primitive::<DurationNanosecondType>().values(),
                };
                Kind::Duration(values, *unit)
            }
            Decimal128(_, scale) => {
                Kind::Decimal(array.as_primitive::<Decimal128Type>().values(), *scale)
            }
            List(_) => {
                let list = array.as_list::<i32>();
                let child = Reader::new(py, ctx, list.values().as_ref())?;
                Kind::List(Offsets::Small(list.value_offsets()), Box::new(child))
            }
            LargeList(_) => {
                let list = array.as_list::<i64>();
                let child = Reader::new(py, ctx, list.values().as_ref())?;
                Kind::List(Offsets::Large(list.value_offsets()), Box::new(child))
            }
            FixedSizeList(_, _) => {
                let list = array.as_fixed_size_list();
                let child = Reader::new(py, ctx, list.values().as_ref())?;
                Kind::FixedList(list, Box::new(child))
            }
            Struct(fields) => {
                let columns = array.as_struct().columns();
                let mut children = Vec::with_capacity(fields.len());
                for (field, column) in fields.iter().zip(columns) {
                    let name = super::ffi_util::unicode(py, field.name());
                    let name = PyObj::owned(py, name).ok_or(ReaderError::Python)?;
                    children.push((name, Reader::new(py, ctx, column.as_ref())?));
                }
                Kind::Struct(children)
            }
            Map(_, _) => {
                let map = array.as_map();
                let keys = Reader::new(py, ctx, map.keys().as_ref())?;
                let values = Reader::new(py, ctx, map.values().as_ref())?;
                Kind::Map(map.value_offsets(), Box::new(keys), Box::new(values))
            }
            Dictionary(_, _) => {
                let dictionary = array.as_any_dictionary();
                let values = Reader::new(py, ctx, dictionary.values().as_ref())?;
                Kind::Dictionary(dictionary.normalized_keys(), Box::new(values))
            }
            other => return Err(ReaderError::Unsupported(other.clone())),
        };
        Ok(Reader {
            nulls: array.nulls(),
            kind,
        })
    }

    /// Whether this reader's values can be recycled objects (`int`s and `str`s): only their
    /// lists are worth walking after a slice.
    pub(super) fn recyclable(&self) -> bool {
        matches!(
            self.kind,
            Kind::I64(_) | Kind::I32(_) | Kind::Utf8(_) | Kind::LargeUtf8(_) | Kind::Utf8View(_)
        )
    }

    /// Fills `list` (new, of `range.len()` empty slots) with the values of `range`, for the
    /// common kinds without nulls: one loop per kind instead of a dispatch per value. `None`
    /// for other readers (use [`Reader::get`]); `Err(row)` as [`Reader::get`] fails.
    pub(super) fn fill_plain(
        &self,
        py: Gil,
        recycled: &mut Recycled,
        list: &PyObj,
        range: Range<usize>,
    ) -> Option<Result<(), usize>> {
        if self.nulls.is_some() {
            return None;
        }
        let filled = match &self.kind {
            Kind::Bool(a) => fill(list, range, |row| boolean(py, a.value(row))),
            Kind::I64(v) => fill(list, range, |row| recycled.int(py, v[row])),
            Kind::I32(v) => fill(list, range, |row| recycled.int(py, v[row].into())),
            Kind::F64(v) => fill(list, range, |row| float(py, v[row])),
            Kind::Utf8(a) => fill(list, range, |row| recycled.str(py, a.value(row))),
            Kind::LargeUtf8(a) => fill(list, range, |row| recycled.str(py, a.value(row))),
            Kind::Utf8View(a) => fill(list, range, |row| recycled.str(py, a.value(row))),
            _ => return None,
        };
        Some(filled)
    }

    /// The value at `row` as a new Python object; `None` with a Python exception set when
    /// Python cannot represent it (e.g. a timestamp beyond year 9999).
    #[inline]
    pub(super) fn get(&self, py: Gil, ctx: &Context, row: usize) -> Option<PyObj> {
        if self.nulls.is_some_and(|n| n.is_null(row)) {
            return Some(PyObj::none(py));
        }
        match &self.kind {
            Kind::Null => Some(PyObj::none(py)),
            Kind::Bool(a) => boolean(py, a.value(row)),
            Kind::I8(v) => int(py, v[row].into()),
            Kind::I16(v) => int(py, v[row].into()),
            Kind::I32(v) => int(py, v[row].into()),
            Kind::I64(v) => int(py, v[row]),
            Kind::U8(v) => int(py, v[row].into()),
            Kind::U16(v) => int(py, v[row].into()),
            Kind::U32(v) => int(py, v[row].into()),
            Kind::U64(v) => uint(py, v[row]),
            Kind::F16(v) => float(py, v[row].to_f64()),
            Kind::F32(v) => float(py, v[row].into()),
            Kind::F64(v) => float(py, v[row]),
            Kind::Utf8(a) => string(py, a.value(row)),
            Kind::LargeUtf8(a) => string(py, a.value(row)),
            Kind::Utf8View(a) => string(py, a.value(row)),
            Kind::Binary(a) => bytes_of(py, binary(*a, row)),
            Kind::LargeBinary(a) => bytes_of(py, binary(*a, row)),
            Kind::BinaryView(a) => bytes_of(py, binary_view(*a, row)),
            Kind::FixedBinary(a) => bytes_of(py, a.value(row)),
            Kind::Date32(v) => date(py, ctx, v[row].into()),
            Kind::Date64(v) => date(py, ctx, v[row].div_euclid(86_400_000)),
            Kind::Timestamp(v, unit, zone) => {
                timestamp(py, ctx, to_micros(v[row], *unit), zone.as_ref())
            }
            Kind::Time32(v, unit) => time(py, ctx, to_micros(v[row].into(), *unit)),
            Kind::Time64(v, unit) => time(py, ctx, to_micros(v[row], *unit)),
            Kind::Duration(v, unit) => duration(py, ctx, v[row], *unit),
            Kind::Decimal(v, scale) => decimal(py, ctx, v[row], *scale),
            Kind::List(offsets, child) => {
                let (start, end) = match offsets {
                    Offsets::Small(o) => (o[row] as usize, o[row + 1] as usize),
                    Offsets::Large(o) => (o[row] as usize, o[row + 1] as usize),
                };
                list(py, ctx, child, start..end)
            }
            Kind::FixedList(array, child) => {
                let start = array.value_offset(row) as usize;
                list(py, ctx, child, start..start + array.value_length() as usize)
            }
            Kind::Struct(children) => {
                let dict = new_dict(py)?;
                for (name, child) in children {
                    dict_set(py, &dict, name, &child.get(py, ctx, row)?)?;
                }
                Some(dict)
            }
            Kind::Map(offsets, keys, values) => {
                let dict = new_dict(py)?;
                for entry in offsets[row] as usize..offsets[row + 1] as usize {
                    let key = keys.get(py, ctx, entry)?;
                    dict_set(py, &dict, &key, &values.get(py, ctx, entry)?)?;
                }
                Some(dict)
            }
            Kind::Dictionary(keys, values) => values.get(py, ctx, keys[row]),
        }
    }
}

fn binary<T: ByteArrayType<Native = [u8]>>(a: &GenericByteArray<T>, row: usize) -> &[u8] {
    a.value(row)
}

fn binary_view<T: ByteViewType<Native = [u8]>>(a: &GenericByteViewArray<T>, row: usize) -> &[u8] {
    a.value(row)
}
