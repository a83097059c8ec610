//! The sub-interpreter pool: row-wise UDFs over every supported Arrow type, ordering across
//! interpreters, errors, load refusals, caching, and start/shutdown.
//!
//! Payloads are built in the main interpreter with pyo3 and cloudpickle, as a client would.
//! Built only against Python >= 3.12, where the pool exists.
#![cfg(Py_3_12)]

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::Duration;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Date64Array,
    Decimal128Array, DictionaryArray, DurationMicrosecondArray, DurationMillisecondArray,
    DurationNanosecondArray, DurationSecondArray, FixedSizeBinaryArray, FixedSizeListArray,
    Float16Array, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    Int64Builder, LargeBinaryArray, LargeListBuilder, LargeStringArray, ListArray, MapBuilder,
    NullArray, StringArray, StringBuilder, StringViewArray, StructArray, Time32MillisecondArray,
    Time32SecondArray, Time64MicrosecondArray, Time64NanosecondArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Fields, Float16Type, Float64Type, Int8Type, Int32Type,
    Int64Type, TimeUnit, UInt8Type,
};
use pickleball_executor::cancellation::CancelToken;
use pickleball_executor::python::subinterp::{
    RowsError, SubInterpreterPool, reuse_status, reused_blocks,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

mod common;
use common::{init_python, payload};

/// Serializes the tests: several start or stop pools and count OS threads.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// One pool of three interpreters shared by the tests of this binary.
fn pool() -> &'static SubInterpreterPool {
    static POOL: OnceLock<SubInterpreterPool> = OnceLock::new();
    POOL.get_or_init(|| {
        init_python();
        SubInterpreterPool::start(3).expect("start the pool")
    })
}

fn lambda(expr: &str) -> ([u8; 32], Arc<[u8]>) {
    payload(&format!("f = {expr}"))
}

/// Runs `expr` (a lambda) over `args` on `pool`.
fn run_on(
    pool: &SubInterpreterPool,
    expr: &str,
    args: &[ArrayRef],
    return_type: &DataType,
) -> Result<ArrayRef, RowsError> {
    let (digest, bytes) = lambda(expr);
    let rows = args.first().map_or(0, |a| a.len());
    pool.call_rows("test_udf", digest, &bytes, args, rows, return_type, None)
}

fn run(expr: &str, args: &[ArrayRef], return_type: &DataType) -> ArrayRef {
    run_on(pool(), expr, args, return_type).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn failure(expr: &str, args: &[ArrayRef], return_type: &DataType) -> String {
    match run_on(pool(), expr, args, return_type) {
        Err(RowsError::Failed(e)) => e.to_string(),
        other => panic!("{expr}: expected a failure, got {other:?}"),
    }
}

/// The UDF `udf` (a payload from [`payload`]) called on `input`'s rows.
fn call_payload(
    udf: &str,
    payload: &([u8; 32], Arc<[u8]>),
    input: &ArrayRef,
    return_type: &DataType,
) -> Result<ArrayRef, RowsError> {
    let args = [Arc::clone(input)];
    pool().call_rows(
        udf,
        payload.0,
        &payload.1,
        &args,
        input.len(),
        return_type,
        None,
    )
}

/// The failure message of a call that must fail.
fn failure_of(udf: &str, result: Result<ArrayRef, RowsError>) -> String {
    match result {
        Err(RowsError::Failed(e)) => e.to_string(),
        other => panic!("{udf}: expected a failure, got {other:?}"),
    }
}

/// The failure message of the UDF `udf` (a payload from [`payload`]) called on `input`.
fn payload_failure(udf: &str, payload: &([u8; 32], Arc<[u8]>), input: ArrayRef) -> String {
    failure_of(udf, call_payload(udf, payload, &input, &DataType::Int64))
}

/// The threads that ran `ident_udf` (returning `threading.get_ident()`) on `input`'s rows,
/// one entry per run of consecutive rows on the same thread.
fn threads_in_turn(ident_udf: &str, input: ArrayRef) -> Vec<u64> {
    let idents = run(ident_udf, &[input], &DataType::UInt64);
    let mut idents = idents
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap()
        .values()
        .to_vec();
    idents.dedup();
    idents
}

/// OS threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// OS threads of sub-interpreter workers (named `pickleball-subinterpreter-N`, which Linux
/// truncates to 15 bytes). Exact even while the test harness starts and ends its threads.
fn worker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("pickleball-sub"))
        .count()
}

/// [`worker_threads`] once it equals `expected`, or after 5 s. A joined thread can stay listed
/// in `/proc/self/task` for a moment: the kernel wakes the joiner before it removes the task.
fn worker_threads_settled_at(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let count = worker_threads();
        if count == expected || std::time::Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The values of an Int64 result.
fn int64s(array: &ArrayRef) -> &[i64] {
    array
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("an Int64 array")
        .values()
}

fn arc(array: impl Array + 'static) -> ArrayRef {
    Arc::new(array)
}

/// One array of every supported type, with nulls (values Python represents exactly).
fn every_type() -> Vec<ArrayRef> {
    let us = |v: i64| v * 1_000_000;
    let mut large_list = LargeListBuilder::new(StringBuilder::new());
    large_list.values().append_value("a");
    large_list.values().append_null();
    large_list.append(true);
    large_list.append(false);
    large_list.values().append_value("ü");
    large_list.append(true);
    let mut map = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
    map.keys().append_value("k1");
    map.values().append_value(1);
    map.keys().append_value("k2");
    map.values().append_null();
    map.append(true).unwrap();
    map.append(false).unwrap();
    map.append(true).unwrap();
    let struct_fields = Fields::from(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Utf8, true),
        Field::new(
            "c",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            true,
        ),
    ]);
    let structs = StructArray::try_new(
        struct_fields,
        vec![
            arc(Int64Array::from(vec![Some(1), None, Some(3)])),
            arc(StringArray::from(vec![Some("x"), Some("y"), None])),
            arc(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                Some(vec![Some(1)]),
                None,
                Some(vec![]),
            ])),
        ],
        Some(NullBuffer::from(vec![true, false, true])),
    )
    .unwrap();
    vec![
        arc(NullArray::new(3)),
        arc(BooleanArray::from(vec![Some(true), None, Some(false)])),
        arc(Int8Array::from(vec![Some(i8::MIN), None, Some(i8::MAX)])),
        arc(Int16Array::from(vec![Some(i16::MIN), None, Some(i16::MAX)])),
        arc(Int32Array::from(vec![Some(i32::MIN), None, Some(i32::MAX)])),
        arc(Int64Array::from(vec![Some(i64::MIN), None, Some(i64::MAX)])),
        arc(UInt8Array::from(vec![Some(0), None, Some(u8::MAX)])),
        arc(UInt16Array::from(vec![Some(0), None, Some(u16::MAX)])),
        arc(UInt32Array::from(vec![Some(0), None, Some(u32::MAX)])),
        arc(UInt64Array::from(vec![Some(0), None, Some(u64::MAX)])),
        arc(Float16Array::from(vec![
            Some(half_of(1.5)),
            None,
            Some(half_of(-2.0)),
        ])),
        arc(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
        arc(Float64Array::from(vec![Some(1e300), None, Some(-0.1)])),
        arc(StringArray::from(vec![Some("héllo"), None, Some("")])),
        arc(LargeStringArray::from(vec![Some("a"), None, Some("🦀")])),
        arc(StringViewArray::from(vec![
            Some("a string longer than twelve bytes"),
            None,
            Some("short"),
        ])),
        arc(BinaryArray::from(vec![
            Some(&b"\x00\xff"[..]),
            None,
            Some(b""),
        ])),
        arc(LargeBinaryArray::from(vec![
            Some(&b"ab"[..]),
            None,
            Some(b"c"),
        ])),
        arc(BinaryViewArray::from(vec![
            Some(&b"binary view longer than 12"[..]),
            None,
            Some(b"x"),
        ])),
        arc(FixedSizeBinaryArray::try_from_sparse_iter_with_size(
            vec![Some(b"abc".to_vec()), None, Some(b"xyz".to_vec())].into_iter(),
            3,
        )
        .unwrap()),
        arc(Date32Array::from(vec![Some(0), None, Some(-719_162)])),
        arc(Date64Array::from(vec![
            Some(86_400_000 * 365),
            None,
            Some(-86_400_000),
        ])),
        arc(TimestampSecondArray::from(vec![Some(0), None, Some(-1)])),
        arc(TimestampMillisecondArray::from(vec![
            Some(1_700_000_000_123),
            None,
            Some(-1),
        ])),
        arc(TimestampMicrosecondArray::from(vec![
            Some(us(253_402_300_799)),
            None,
            Some(-1),
        ])),
        arc(TimestampNanosecondArray::from(vec![
            Some(1_000),
            None,
            Some(-5_000),
        ])),
        arc(TimestampMicrosecondArray::from(vec![Some(1), None, Some(-1)]).with_timezone("UTC")),
        arc(TimestampMillisecondArray::from(vec![Some(5), None, Some(-7)]).with_timezone("+05:30")),
        arc(
            TimestampSecondArray::from(vec![Some(1_700_000_000), None, Some(0)])
                .with_timezone("Europe/Paris"),
        ),
        arc(
            TimestampNanosecondArray::from(vec![Some(3_000), None, Some(0)])
                .with_timezone("-08:00"),
        ),
        arc(Time32SecondArray::from(vec![Some(0), None, Some(86_399)])),
        arc(Time32MillisecondArray::from(vec![
            Some(1),
            None,
            Some(86_399_999),
        ])),
        arc(Time64MicrosecondArray::from(vec![
            Some(1),
            None,
            Some(86_399_999_999),
        ])),
        arc(Time64NanosecondArray::from(vec![
            Some(1_000),
            None,
            Some(0),
        ])),
        arc(DurationSecondArray::from(vec![
            Some(-1),
            None,
            Some(86_400 * 400),
        ])),
        arc(DurationMillisecondArray::from(vec![
            Some(-1_500),
            None,
            Some(1),
        ])),
        arc(DurationMicrosecondArray::from(vec![
            Some(-86_400_000_000 * 365 * 100),
            None,
            Some(7),
        ])),
        arc(DurationNanosecondArray::from(vec![
            Some(-2_000),
            None,
            Some(1_000),
        ])),
        arc(Decimal128Array::from(vec![Some(12_345), None, Some(-1)])
            .with_precision_and_scale(10, 3)
            .unwrap()),
        arc(
            Decimal128Array::from(vec![Some(i128::MAX / 10), None, Some(-(10i128.pow(37)))])
                .with_precision_and_scale(38, 10)
                .unwrap(),
        ),
        arc(Decimal128Array::from(vec![Some(123), None, Some(0)])
            .with_precision_and_scale(5, -2)
            .unwrap()),
        arc(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            None,
            Some(vec![]),
        ])),
        arc(large_list.finish()),
        arc(
            FixedSizeListArray::from_iter_primitive::<Float64Type, _, _>(
                vec![
                    Some(vec![Some(1.0), None]),
                    None,
                    Some(vec![Some(3.0), Some(4.0)]),
                ],
                2,
            ),
        ),
        arc(structs),
        arc(map.finish()),
        // A slice: offsets into the buffers must be honoured.
        arc(Int64Array::from(vec![9, 8, 7, 6, 5]).slice(1, 3)),
        arc(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(0)]),
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![Some(4)]),
        ])
        .slice(1, 3)),
    ]
}

/// Arrow's `f16` (the `half` crate's, not a direct dependency).
type F16 = <Float16Type as ArrowPrimitiveType>::Native;

fn half_of(v: f32) -> F16 {
    F16::from_f32(v)
}

#[test]
fn identity_round_trips_every_type() {
    let _serial = serial();
    for input in every_type() {
        let output = run("lambda x: x", &[Arc::clone(&input)], input.data_type());
        assert_eq!(output.data_type(), input.data_type());
        assert_eq!(
            output.to_data(),
            input.to_data(),
            "round trip of {}",
            input.data_type()
        );
        // Rows equal as values, whatever the buffers' offsets.
        assert_eq!(&output, &input, "round trip of {}", input.data_type());
    }
}

#[test]
fn dictionary_arrays_arrive_decoded() {
    let _serial = serial();
    let strings: DictionaryArray<Int8Type> = vec![Some("b"), None, Some("a"), Some("b")]
        .into_iter()
        .collect();
    let strings: ArrayRef = Arc::new(strings);
    let output = run("lambda x: x", &[Arc::clone(&strings)], &DataType::Utf8);
    assert_eq!(&output, &cast(&strings, &DataType::Utf8).unwrap());

    let values = Int64Array::from(vec![Some(10), None, Some(30)]);
    let keys = UInt8Array::from(vec![Some(0), Some(1), None, Some(2), Some(0)]);
    let ints: ArrayRef =
        Arc::new(DictionaryArray::<UInt8Type>::try_new(keys, Arc::new(values)).unwrap());
    let output = run("lambda x: x", &[Arc::clone(&ints)], &DataType::Int64);
    assert_eq!(&output, &cast(&ints, &DataType::Int64).unwrap());
}

#[test]
fn arguments_are_python_builtins() {
    let _serial = serial();
    let arrays = every_type();
    // Row 0 has a value in every array except the Null one.
    let names = run(
        "lambda *a: ','.join(type(x).__name__ for x in a)",
        &arrays,
        &DataType::Utf8,
    );
    let names = names.as_any().downcast_ref::<StringArray>().unwrap();
    let expected = [
        "NoneType",
        "bool",
        "int",
        "int",
        "int",
        "int",
        "int",
        "int",
        "int",
        "int",
        "float",
        "float",
        "float",
        "str",
        "str",
        "str",
        "bytes",
        "bytes",
        "bytes",
        "bytes",
        "date",
        "date",
        "datetime",
        "datetime",
        "datetime",
        "datetime",
        "datetime",
        "datetime",
        "datetime",
        "datetime",
        "time",
        "time",
        "time",
        "time",
        "timedelta",
        "timedelta",
        "timedelta",
        "timedelta",
        "Decimal",
        "Decimal",
        "Decimal",
        "list",
        "list",
        "list",
        "dict",
        "dict",
        "int",
        "list",
    ];
    assert_eq!(names.value(0), expected.join(","));
    assert_eq!(
        names
            .value(1)
            .split(',')
            .filter(|n| *n == "NoneType")
            .count(),
        arrays.len() - 1,
        "row 1 is null everywhere except in the Int64 slice"
    );
}

/// Strings arrive as ordinary `str` objects whatever their content (ASCII ones are built
/// directly, others decoded): equal to and hashing like literals, with the right length.
#[test]
fn strings_arrive_as_ordinary_str_objects() {
    let _serial = serial();
    let texts = [
        "",
        "a",
        "abc",
        "h\u{e9}llo",
        "\u{65e5}\u{672c}",
        "\u{1f600}!",
        "tab\tand ~",
    ];
    let literals =
        "['', 'a', 'abc', 'h\\u00e9llo', '\\u65e5\\u672c', '\\U0001f600!', 'tab\\tand ~']";
    let udf = format!(
        "lambda s: f'{{len(s)}} {{s.isascii()}} {{ {{t: i for i, t in enumerate({literals})}}.get(s) }} \
         {{hash(s) == hash(s.encode().decode())}}'"
    );
    for input in [
        arc(StringArray::from(texts.to_vec())),
        arc(LargeStringArray::from(texts.to_vec())),
        arc(StringViewArray::from(texts.to_vec())),
    ] {
        let output = run(&udf, &[input], &DataType::Utf8);
        let output = output.as_any().downcast_ref::<StringArray>().unwrap();
        let got: Vec<&str> = output.iter().map(Option::unwrap).collect();
        assert_eq!(
            got,
            [
                "0 True 0 True",
                "1 True 1 True",
                "3 True 2 True",
                "5 False 3 True",
                "2 False 4 True",
                "2 False 5 True",
                "9 True 6 True",
            ]
        );
    }
}

/// A UDF on a pool of one interpreter, so that every slice of rows after the first gets
/// recycled argument objects.
struct OnOneInterpreter {
    pool: SubInterpreterPool,
    udf: ([u8; 32], Arc<[u8]>),
}

impl OnOneInterpreter {
    /// `source` must define `f`.
    fn new(source: &str) -> Self {
        init_python();
        OnOneInterpreter {
            pool: SubInterpreterPool::start(1).expect("start"),
            udf: payload(source),
        }
    }

    /// `f` called on the rows of `args`.
    fn call(&self, args: &[ArrayRef], return_type: &DataType) -> ArrayRef {
        let (digest, bytes) = &self.udf;
        let rows = args[0].len();
        self.pool
            .call_rows("recycling", *digest, bytes, args, rows, return_type, None)
            .unwrap()
    }
}

/// A UDF that keeps some of its `int` arguments (in `kept`) and returns the others: a
/// second call reports how many kept values changed since (`y == 2`) and how many were kept
/// (`y == 3`).
const KEEPS_ARGUMENTS: &str = "
kept = []
def f(x, y):
    if y == 1:
        kept.append((x, str(x)))
    elif y == 2:
        return sum(1 for v, text in kept if str(v) != text)
    elif y == 3:
        return len(kept)
    return x
";

#[test]
fn int_arguments_kept_or_returned_by_a_udf_keep_their_values() {
    let _serial = serial();
    let single = OnOneInterpreter::new(KEEPS_ARGUMENTS);
    let rows = 5000;
    let limit = (1 << 30) - 1;
    let edges = [
        limit,
        -limit,
        limit + 1,
        -limit - 1,
        257,
        -6,
        256,
        -5,
        0,
        i64::MIN,
    ];
    let x: Vec<i64> = (0..rows)
        .map(|i| match i % 20 {
            k @ 0..10 => edges[k as usize],
            k => (i * 7919 + k) % (2 * limit) - limit,
        })
        .collect();
    let keep: Vec<i64> = (0..rows).map(|i| i64::from(i % 3 == 0)).collect();
    let as_i32 = cast(&arc(Int64Array::from(x.clone())), &DataType::Int32).unwrap();
    for xs in [arc(Int64Array::from(x.clone())), as_i32] {
        let expected = cast(&xs, &DataType::Int64).unwrap();
        let args = [xs, arc(Int64Array::from(keep.clone()))];
        let returned = single.call(&args, &DataType::Int64);
        assert_eq!(int64s(&returned), int64s(&expected));
    }
    let check = [
        arc(Int64Array::from(vec![0, 0])),
        arc(Int64Array::from(vec![2, 3])),
    ];
    let report = single.call(&check, &DataType::Int64);
    assert_eq!(int64s(&report), [0, 2 * (rows / 3 + 1)], "[changed, kept]");
}

/// `sys.getallocatedblocks()` of the interpreter, as a UDF sees it.
const ALLOCATED_BLOCKS: &str = "import sys\ndef f(x):\n    return sys.getallocatedblocks()\n";

#[test]
fn arguments_are_recycled_between_slices() {
    let _serial = serial();
    let single = OnOneInterpreter::new(ALLOCATED_BLOCKS);
    let blocks = |input: ArrayRef| {
        let output = single.call(&[input], &DataType::Int64);
        int64s(&output)[0]
    };
    let ints = |n: i64| arc(Int64Array::from_iter_values(1000..1000 + n));
    let strs = |n: i64| {
        arc(StringArray::from_iter_values(
            (0..n).map(|i| format!("{i:08}")),
        ))
    };
    for column in [ints, strs] {
        let before = blocks(column(1));
        blocks(column(3000));
        let after = blocks(column(1));
        // The 3,000 rows ran in slices of 1,024: the last slice's arguments stay allocated,
        // kept for the next call, instead of being freed.
        assert!(
            (900..1100).contains(&(after - before)),
            "{before} blocks before, {after} after"
        );
    }
    // Strs are kept by length, 4,096 at most: a full stock is emptied, so that lengths no
    // longer in use do not keep out those in use. After four more lengths of 1,024 strs each
    // (the 4,096 strs of the first four are let go when the fifth comes), two lengths are
    // kept, one more than before.
    let before = blocks(strs(1));
    for width in 10..15 {
        blocks(arc(StringArray::from_iter_values(
            (0..3000).map(|i| format!("{i:0width$}")),
        )));
    }
    let after = blocks(strs(1));
    assert!(
        (900..1100).contains(&(after - before)),
        "{before} blocks before, {after} after"
    );
}

/// Like [`KEEPS_ARGUMENTS`] for `str`s, whose other rows return the text, whether its hash
/// is that of an equal new `str`, and whether a dict finds it by an equal new `str`.
const KEEPS_STR_ARGUMENTS: &str = "
kept = []
def f(s, y):
    if y == 1:
        kept.append((s, s.encode()))
    elif y == 2:
        return str(sum(1 for v, text in kept if v.encode() != text))
    elif y == 3:
        return str(len(kept))
    twin = s.encode().decode()
    return f'{s}|{hash(s) == hash(twin)}|{ {s: 1}.get(twin, 0) }'
";

#[test]
fn str_arguments_kept_or_returned_by_a_udf_keep_their_text_and_hash() {
    let _serial = serial();
    let single = OnOneInterpreter::new(KEEPS_STR_ARGUMENTS);
    let rows = 5000;
    // Lengths repeat from slice to slice, so that recycled strs get new text of their length.
    let texts: Vec<String> = (0..rows)
        .map(|i| match i % 9 {
            0 => String::new(),
            1 => "\u{e9}t\u{e9}".repeat(i % 4),
            2 => "x".repeat(300 + i % 3),
            k => format!("{i:0width$}", width = k),
        })
        .collect();
    let keep: Vec<i64> = (0..rows).map(|i| i64::from(i % 4 == 0)).collect();
    for strings in [
        arc(StringArray::from_iter_values(&texts)),
        arc(LargeStringArray::from_iter_values(&texts)),
        arc(StringViewArray::from_iter_values(&texts)),
    ] {
        let args = [strings, arc(Int64Array::from(keep.clone()))];
        let returned = single.call(&args, &DataType::Utf8);
        let returned = returned.as_string::<i32>();
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(returned.value(i), format!("{text}|True|1"), "row {i}");
        }
    }
    let check = [
        arc(StringArray::from(vec!["", ""])),
        arc(Int64Array::from(vec![2, 3])),
    ];
    let report = single.call(&check, &DataType::Utf8);
    let report = report.as_string::<i32>();
    let expected = (3 * rows.div_ceil(4)).to_string();
    assert_eq!(
        [report.value(0), report.value(1)],
        ["0", &expected],
        "[changed, kept]"
    );
}

/// Interns some of its `str` arguments (`y == 1`, as `sys.intern` does: mortal, not counted
/// by the intern table); on the other rows, whether the argument interns to the same object as
/// an equal new `str`, which a recycled interned argument would not (it stays flagged as
/// interned while it holds another text).
const INTERNS_ARGUMENTS: &str = "
import sys
def f(s, y):
    if y == 1:
        sys.intern(s)
        return 'interned'
    return str(sys.intern(s.encode().decode()) is sys.intern(s))
";

#[test]
fn interned_str_arguments_are_not_recycled() {
    let _serial = serial();
    let single = OnOneInterpreter::new(INTERNS_ARGUMENTS);
    let rows = 4096;
    let texts: Vec<String> = (0..rows).map(|i| format!("interned {i:06}")).collect();
    let interns: Vec<i64> = (0..rows).map(|i| i64::from(i < 1024)).collect();
    let args = [
        arc(StringArray::from_iter_values(&texts)),
        arc(Int64Array::from(interns)),
    ];
    let returned = single.call(&args, &DataType::Utf8);
    let returned = returned.as_string::<i32>();
    for i in 0..rows {
        let expected = if i < 1024 { "interned" } else { "True" };
        assert_eq!(returned.value(i), expected, "row {i}");
    }
}

/// Keeps the argument lists it finds through the garbage collector (`y == 1`) and reports
/// how many of their items are no longer `int`s (`y == 2`).
const HOLDS_ARGUMENT_LISTS: &str = "
import gc
held = []
def f(x, y):
    if y == 1:
        held.extend(r for r in gc.get_referrers(x) if type(r) is list and x in r)
    elif y == 2:
        return sum(1 for r in held for v in r if type(v) is not int)
    return x
";

#[test]
fn argument_lists_a_udf_holds_are_left_alone() {
    let _serial = serial();
    let single = OnOneInterpreter::new(HOLDS_ARGUMENT_LISTS);
    let rows = 3000;
    let holds: Vec<i64> = (0..rows).map(|i| i64::from(i % 1000 == 5)).collect();
    let args = [
        arc(Int64Array::from_iter_values(1000..1000 + rows)),
        arc(Int64Array::from(holds)),
    ];
    single.call(&args, &DataType::Int64);
    let check = [
        arc(Int64Array::from(vec![0])),
        arc(Int64Array::from(vec![2])),
    ];
    let report = single.call(&check, &DataType::Int64);
    assert_eq!(int64s(&report), [0], "items of held lists that changed");
}

#[test]
fn time_zones_become_tzinfo() {
    let _serial = serial();
    let show = "lambda t: f'{t.isoformat()}|{t.tzinfo}'";
    let cases = [
        (None, "1970-01-01T00:00:00|None"),
        (Some("UTC"), "1970-01-01T00:00:00+00:00|UTC"),
        (Some("+02:00"), "1970-01-01T02:00:00+02:00|UTC+02:00"),
        (
            Some("Europe/Paris"),
            "1970-01-01T01:00:00+01:00|Europe/Paris",
        ),
    ];
    for (tz, expected) in cases {
        let input = arc(TimestampSecondArray::from(vec![0]).with_timezone_opt(tz));
        let output = run(show, &[input], &DataType::Utf8);
        let output = output.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(output.value(0), expected);
    }
    // Values Python cannot represent, and unknown zones, are reported with the argument.
    let far = arc(TimestampSecondArray::from(vec![0, 253_402_300_800]));
    let message = failure(show, &[far], &DataType::Utf8);
    assert!(
        message.contains("row 1") && message.contains("year 10000"),
        "{message}"
    );
    let mars = arc(TimestampSecondArray::from(vec![0]).with_timezone("Mars/Olympus_Mons"));
    let message = failure(show, &[mars], &DataType::Utf8);
    assert!(message.contains("ZoneInfoNotFoundError"), "{message}");
    // Aware results are converted to their UTC instant; naive ones are taken as they are.
    let make = "lambda x: __import__('datetime').datetime(2020, 1, 1, 5, \
                tzinfo=__import__('datetime').timezone(__import__('datetime').timedelta(hours=x)))";
    let hours = arc(Int64Array::from(vec![2, -3]));
    for tz in [None, Some("Asia/Tokyo")] {
        let ty = DataType::Timestamp(TimeUnit::Second, tz.map(Into::into));
        let output = run(make, &[Arc::clone(&hours)], &ty);
        let output = output
            .as_any()
            .downcast_ref::<TimestampSecondArray>()
            .unwrap();
        assert_eq!(output.values(), &[1_577_847_600, 1_577_865_600]);
    }
}

#[test]
fn decimals_are_exact() {
    let _serial = serial();
    let ty = DataType::Decimal128(38, 10);
    let input = arc(Decimal128Array::from(vec![i128::MAX / 100, -3])
        .with_precision_and_scale(38, 10)
        .unwrap());
    // copy_negate() is exact whatever the decimal context's precision (28 digits).
    let negated = run("lambda d: d.copy_negate()", &[input], &ty);
    let negated = negated.as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(negated.value(0), -(i128::MAX / 100));
    assert_eq!(negated.value(1), 3);

    let ints = arc(Int64Array::from(vec![7]));
    let small = DataType::Decimal128(5, 2);
    let from_int = run("lambda x: x", &[Arc::clone(&ints)], &small);
    assert_eq!(
        from_int
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap()
            .value(0),
        700
    );
    let lossy = failure(
        "lambda x: __import__('decimal').Decimal('1.234')",
        &[Arc::clone(&ints)],
        &small,
    );
    assert!(
        lossy.contains("Decimal('1.234')") && lossy.contains("fractional digits"),
        "{lossy}"
    );
    let too_big = failure("lambda x: x * 1000", &[ints], &small);
    assert!(too_big.contains("precision"), "{too_big}");
}

#[test]
fn nested_results_from_python_containers() {
    let _serial = serial();
    let input = arc(Int64Array::from(vec![Some(2), None, Some(0)]));
    let list = DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)));
    let lists = run(
        "lambda n: None if n is None else tuple(range(n))",
        &[Arc::clone(&input)],
        &list,
    );
    let expected =
        ListArray::from_iter_primitive::<datafusion::arrow::datatypes::Int64Type, _, _>(vec![
            Some(vec![Some(0), Some(1)]),
            None,
            Some(vec![]),
        ]);
    assert_eq!(lists.to_data(), expected.to_data());

    let fields = Fields::from(vec![
        Field::new("n", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]);
    // Missing keys are nulls; unknown keys are ignored (as pyarrow does).
    let structs = run(
        "lambda n: {'n': n, 'extra': 1}",
        &[Arc::clone(&input)],
        &DataType::Struct(fields.clone()),
    );
    let structs = structs.as_any().downcast_ref::<StructArray>().unwrap();
    assert_eq!(structs.null_count(), 0);
    assert_eq!(structs.column(0).as_ref(), input.as_ref());
    assert_eq!(structs.column(1).null_count(), 3);

    let map_type = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new())
        .finish()
        .data_type()
        .clone();
    let maps = run(
        "lambda n: [('a', n), ('b', 1)]",
        &[Arc::clone(&input)],
        &map_type,
    );
    let dicts = run("lambda n: {'a': n, 'b': 1}", &[input], &map_type);
    assert_eq!(maps.to_data(), dicts.to_data());
    assert_eq!(maps.len(), 3);
}

#[test]
fn large_inputs_keep_their_order_across_interpreters() {
    let _serial = serial();
    let n = 100_003;
    let a = arc(Int64Array::from_iter_values(0..n));
    let b = arc(Int64Array::from_iter_values((0..n).map(|v| v % 7)));
    let output = run("lambda a, b: a * 10 + b", &[a, b], &DataType::Int64);
    let output = output.as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(output.len(), n as usize);
    assert!(
        output
            .values()
            .iter()
            .enumerate()
            .all(|(i, v)| *v == i as i64 * 10 + i as i64 % 7)
    );

    // Zero arguments: called once per row.
    let (digest, bytes) = lambda("lambda: 'x'");
    let output = pool()
        .call_rows("const", digest, &bytes, &[], 1000, &DataType::Utf8, None)
        .unwrap();
    assert_eq!(output.len(), 1000);
    assert_eq!(output.null_count(), 0);

    let empty = pool()
        .call_rows("const", digest, &bytes, &[], 0, &DataType::Utf8, None)
        .unwrap();
    assert_eq!(empty.len(), 0);
}

#[test]
fn chunks_run_on_different_interpreter_threads() {
    let _serial = serial();
    let input = arc(Int64Array::from_iter_values(0..30_000));
    // A thread that called within the last 1 ms (the previous test's) still counts as using
    // an interpreter; after that, this call is the only one and gets them all.
    thread::sleep(Duration::from_millis(20));
    // Each chunk's first row waits a while, so one interpreter cannot take both chunks
    // before the other thread is scheduled (which made this test flaky on a busy VM).
    let idents = threads_in_turn(
        "lambda x: (x % 15_000 == 0 and __import__('time').sleep(0.2), \
         __import__('threading').get_ident())[1]",
        input,
    );
    assert!(
        idents.len() >= 2,
        "all chunks ran on one thread: {idents:?}"
    );
}

#[test]
fn a_call_made_while_another_runs_keeps_to_one_interpreter() {
    let _serial = serial();
    // The first call takes all three interpreters: each chunk's first row marks a file and
    // waits a second ...
    let mark = std::env::temp_dir().join(format!("pickleball-busy-{}", std::process::id()));
    let _ = std::fs::remove_file(&mark);
    let busy = format!(
        "lambda x: (x % 10_000 == 0 and (open({:?}, 'a').close(), \
         __import__('time').sleep(1.0)), x)[1]",
        mark.display().to_string()
    );
    let slow = thread::spawn(move || {
        run(
            &busy,
            &[arc(Int64Array::from_iter_values(0..30_000))],
            &DataType::Int64,
        )
        .len()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !mark.exists() && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(mark.exists(), "the first call did not start");
    // ... so the second, made meanwhile, is not split: one interpreter runs all its rows.
    let idents = threads_in_turn(
        "lambda x: __import__('threading').get_ident()",
        arc(Int64Array::from_iter_values(0..30_000)),
    );
    assert_eq!(idents.len(), 1, "the second call was split: {idents:?}");
    assert_eq!(slow.join().unwrap(), 30_000);
    let _ = std::fs::remove_file(&mark);
}

#[test]
fn many_batches_on_pools_started_and_stopped_in_turn() {
    let _serial = serial();
    init_python();
    let before = worker_threads();
    let (digest, bytes) = lambda("lambda x, s: f'{s}:{x + 1}'");
    for size in [2, 4, 1, 8, 3] {
        let mut pool = SubInterpreterPool::start(size).expect("start");
        assert_eq!(pool.size(), size);
        assert_eq!(worker_threads(), before + size);
        for batch in 0..40usize {
            let rows = (batch * 97) % 3000 + 1;
            let x = arc(Int32Array::from_iter_values(0..rows as i32));
            let s = arc(StringArray::from_iter_values(
                (0..rows).map(|r| format!("r{r}")),
            ));
            let output = pool
                .call_rows("fmt", digest, &bytes, &[x, s], rows, &DataType::Utf8, None)
                .unwrap();
            let output = output.as_any().downcast_ref::<StringArray>().unwrap();
            assert_eq!(output.value(rows - 1), format!("r{}:{}", rows - 1, rows));
        }
        pool.shutdown();
        assert_eq!(
            worker_threads_settled_at(before),
            before,
            "pool of {size} left threads behind"
        );
        let stopped = pool.call_rows("fmt", digest, &bytes, &[], 1, &DataType::Utf8, None);
        assert!(matches!(stopped, Err(RowsError::Failed(_))));
    }
    assert!(SubInterpreterPool::start(0).is_err());
}

#[test]
fn every_arity_is_called_once_per_row_in_order() {
    let _serial = serial();
    let n = 3000_i64;
    let columns: Vec<ArrayRef> = (1..=5_i64)
        .map(|k| arc(Int64Array::from_iter_values((0..n).map(|i| i * k))))
        .collect();
    // 1 to 5 arguments: the row loop has its own comprehension for 1, 2 and 3, a generic one
    // beyond; each must pair the arguments of the same row.
    for arity in 1..=5 {
        let params: Vec<String> = (0..arity).map(|k| format!("a{k}")).collect();
        let weighted: Vec<String> = (0..arity).map(|k| format!("{} * a{k}", k + 1)).collect();
        let expr = format!("lambda {}: {}", params.join(", "), weighted.join(" + "));
        let out = run(&expr, &columns[..arity], &DataType::Int64);
        let factor: i64 = (1..=arity as i64).map(|k| k * k).sum();
        let expected: Vec<i64> = (0..n).map(|i| i * factor).collect();
        assert_eq!(int64s(&out), expected.as_slice(), "{arity} arguments");
    }
    // No arguments: one call per row all the same.
    let (digest, bytes) = lambda("lambda: 7");
    let out = pool()
        .call_rows("nullary", digest, &bytes, &[], 100, &DataType::Int64, None)
        .unwrap();
    assert_eq!(int64s(&out), vec![7; 100].as_slice());
    // The failing row is found with several arguments too.
    let message = failure(
        "lambda a, b: 1 // (b - 2 * a + 1 - (a == 777))",
        &columns[..2],
        &DataType::Int64,
    );
    assert!(message.contains("ZeroDivisionError"), "{message}");
    assert!(message.contains("row 777"), "{message}");
}

#[test]
fn raising_udf_reports_name_exception_and_traceback() {
    let _serial = serial();
    let (digest, bytes) = payload(
        "def helper(x):\n    raise ValueError(f'bad value {x}')\n\ndef f(x):\n    return helper(x) if x == 1234 else x\n",
    );
    let input = arc(Int64Array::from_iter_values(0..5000));
    let message = payload_failure("my_udf", &(digest, Arc::clone(&bytes)), Arc::clone(&input));
    for part in [
        "my_udf",
        "ValueError",
        "bad value 1234",
        "Traceback",
        "in helper",
        "row 1234",
    ] {
        assert!(message.contains(part), "missing {part:?} in {message}");
    }
    // The traceback starts at the user's function, not in pickleball's row loop.
    assert!(!message.contains("in apply"), "{message}");
    // The interpreters are still usable, and the function still cached.
    let ok = run("lambda x: x + 1", &[Arc::clone(&input)], &DataType::Int64);
    assert_eq!(ok.len(), 5000);
    let again = pool().call_rows(
        "my_udf",
        digest,
        &bytes,
        &[input.slice(0, 10)],
        10,
        &DataType::Int64,
        None,
    );
    assert!(again.is_ok(), "{again:?}");
}

#[test]
fn a_udf_that_consumes_its_callers_iterator_fails_cleanly() {
    let _serial = serial();
    // The UDF reaches into the row loop's frame and skips a row: fewer results than rows.
    let sneaky = payload(
        "import sys\n\ndef f(x):\n    if x == 10:\n        next(sys._getframe(1).f_locals['first'])\n    return x\n",
    );
    let message = payload_failure("sneaky", &sneaky, arc(Int64Array::from_iter_values(0..100)));
    assert!(message.contains("'sneaky'"), "{message}");
    assert!(message.contains("rows 0..100"), "{message}");
    let ok = run(
        "lambda x: x * 2",
        &[arc(Int64Array::from_iter_values(0..3))],
        &DataType::Int64,
    );
    assert_eq!(int64s(&ok), &[0, 2, 4]);
}

#[test]
fn wrong_return_values_name_row_value_and_type() {
    let _serial = serial();
    let input = arc(Int64Array::from_iter_values(0..1000));
    let message = failure(
        "lambda x: 'x' if x == 700 else x",
        &[Arc::clone(&input)],
        &DataType::Int64,
    );
    for part in ["test_udf", "row 700", "'x'", "str", "Int64"] {
        assert!(message.contains(part), "missing {part:?} in {message}");
    }
    let message = failure(
        "lambda x: x * 10**9",
        &[Arc::clone(&input)],
        &DataType::Int32,
    );
    assert!(
        message.contains("row 3") && message.contains("out of range"),
        "{message}"
    );
    let message = failure("lambda x: 1.0", &[Arc::clone(&input)], &DataType::Int64);
    assert!(
        message.contains("1.0") && message.contains("row 0"),
        "{message}"
    );
    let message = failure("lambda x: True", &[Arc::clone(&input)], &DataType::Int64);
    assert!(message.contains("True"), "{message}");
    let message = failure("lambda x: 1", &[Arc::clone(&input)], &DataType::Boolean);
    assert!(message.contains("expected a bool"), "{message}");
    let list = DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)));
    let message = failure("lambda x: [1, 'two']", &[Arc::clone(&input)], &list);
    assert!(
        message.contains("'two'") && message.contains("row 0"),
        "{message}"
    );
    // Ints and floats are both fine for floats; a datetime is not a time.
    let floats = run(
        "lambda x: x if x % 2 else x / 2",
        &[Arc::clone(&input)],
        &DataType::Float64,
    );
    assert_eq!(floats.null_count(), 0);
    let message = failure(
        "lambda x: __import__('datetime').datetime(2020, 1, 1)",
        &[input],
        &DataType::Time64(TimeUnit::Microsecond),
    );
    assert!(message.contains("datetime.time"), "{message}");
}

/// Common cases take fast paths (plain columns without nulls into Python; results of exactly
/// the declared type out of it); everything else follows the general rules, with its row.
#[test]
fn values_off_the_fast_paths_follow_the_general_rules() {
    let _serial = serial();
    const CLASSES: &str = "class I(int): pass\nclass F(float): pass\nclass S(str): pass\n";
    let call = |source: &str, input: &ArrayRef, return_type: &DataType| {
        call_payload("edge", &payload(source), input, return_type)
    };
    let message = |result| failure_of("edge", result);
    // Several slices of rows, so that rows are numbered across them.
    let rows = 3000_i64;
    let input = arc(Int64Array::from_iter_values(0..rows));
    let expect = |x: i64| (x % 7 != 0).then_some(x);

    let source = format!(
        "{CLASSES}def f(x):\n    return None if x % 7 == 0 else I(x) if x % 5 == 0 else x\n"
    );
    let ints = call(&source, &input, &DataType::Int64).unwrap();
    let ints: Vec<Option<i64>> = ints.as_primitive::<Int64Type>().iter().collect();
    assert_eq!(ints, (0..rows).map(expect).collect::<Vec<_>>());
    let big = "def f(x):\n    return 2**70 if x == 2500 else x\n";
    let failed = message(call(big, &input, &DataType::Int64));
    assert!(
        failed.contains("row 2500") && failed.contains("out of range"),
        "{failed}"
    );

    let source = format!(
        "{CLASSES}def f(x):\n    return None if x % 7 == 0 else F(x) if x % 5 == 0 else x if \
         x % 2 else float(x)\n"
    );
    let floats = call(&source, &input, &DataType::Float64).unwrap();
    let floats: Vec<Option<f64>> = floats.as_primitive::<Float64Type>().iter().collect();
    let expected: Vec<Option<f64>> = (0..rows).map(|x| expect(x).map(|x| x as f64)).collect();
    assert_eq!(floats, expected);

    let bools = run(
        "lambda x: None if x % 7 == 0 else x % 2 == 1",
        &[Arc::clone(&input)],
        &DataType::Boolean,
    );
    let bools: Vec<Option<bool>> = bools.as_boolean().iter().collect();
    let expected: Vec<Option<bool>> = (0..rows).map(|x| expect(x).map(|x| x % 2 == 1)).collect();
    assert_eq!(bools, expected);

    let source = format!(
        "{CLASSES}def f(x):\n    return None if x % 7 == 0 else S(x) if x % 5 == 0 else str(x)\n"
    );
    let surrogate = "def f(x):\n    return '\\ud800' if x == 2100 else str(x)\n";
    let expected: Vec<Option<String>> = (0..rows)
        .map(|x| expect(x).map(|x| x.to_string()))
        .collect();
    for return_type in [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View] {
        let strings = call(&source, &input, &return_type).unwrap();
        let strings = cast(&strings, &DataType::Utf8).unwrap();
        let strings: Vec<Option<String>> = strings
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect();
        assert_eq!(strings, expected, "{return_type}");
        let failed = message(call(surrogate, &input, &return_type));
        assert!(
            failed.contains("row 2100") && failed.contains("UTF-8"),
            "{failed}"
        );
    }

    // Plain columns (no nulls) arrive as builtins of their type and round-trip.
    let plain: Vec<(ArrayRef, &str)> = vec![
        (arc(BooleanArray::from(vec![true, false, true])), "bool"),
        (arc(Int32Array::from_iter_values(0..5)), "int"),
        (arc(Int64Array::from_iter_values(0..5)), "int"),
        (arc(Float64Array::from_iter_values([0.5; 5])), "float"),
        (arc(StringArray::from_iter_values(["a"; 5])), "str"),
        (arc(LargeStringArray::from_iter_values(["a"; 5])), "str"),
        (arc(StringViewArray::from_iter_values(["a"; 5])), "str"),
    ];
    for (array, name) in plain {
        let kinds = run(
            "lambda v: type(v).__name__",
            &[Arc::clone(&array)],
            &DataType::Utf8,
        );
        assert!(
            kinds.as_string::<i32>().iter().all(|k| k == Some(name)),
            "{array:?}"
        );
        let same = run("lambda v: v", &[Arc::clone(&array)], array.data_type());
        assert_eq!(same.as_ref(), array.as_ref());
    }
}

#[test]
fn unsupported_types_are_refused_up_front() {
    let _serial = serial();
    let input = arc(Int64Array::from(vec![1]));
    let interval = DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::DayTime);
    let message = failure("lambda x: x", &[input], &interval);
    assert!(message.contains("Interval"), "{message}");
}

#[test]
fn payloads_needing_numpy_or_pyarrow_are_refused() {
    let _serial = serial();
    let input = arc(Int64Array::from(vec![1, 2, 3]));
    let (digest, bytes) = payload("import pyarrow\ndef f(x):\n    return pyarrow.__version__\n");
    let first = pool().call_rows(
        "pa_udf",
        digest,
        &bytes,
        &[Arc::clone(&input)],
        3,
        &DataType::Utf8,
        None,
    );
    let Err(RowsError::LoadRefused(reason)) = first else {
        panic!("expected LoadRefused: {first:?}");
    };
    assert!(
        reason.contains("ImportError") || reason.contains("ModuleNotFoundError"),
        "{reason}"
    );
    // Remembered: refused again at once.
    let second = pool().call_rows(
        "pa_udf",
        digest,
        &bytes,
        &[Arc::clone(&input)],
        3,
        &DataType::Utf8,
        None,
    );
    assert!(matches!(second, Err(RowsError::LoadRefused(r)) if r == reason));

    // numpy re-raises a long ImportError of its own; the reason is the refusing module's line.
    let refused_int_udf = |name: &str, source: &str| {
        let (digest, bytes) = payload(source);
        let refused = pool().call_rows(
            name,
            digest,
            &bytes,
            &[Arc::clone(&input)],
            3,
            &DataType::Int64,
            None,
        );
        assert!(
            matches!(refused, Err(RowsError::LoadRefused(_))),
            "{name}: {refused:?}"
        );
    };
    refused_int_udf(
        "np_udf",
        "import numpy\nf = lambda x: int(numpy.int64(x))\n",
    );
    // An import inside the function body fails when called: refused as well.
    refused_int_udf("np_inner", "def f(x):\n    import numpy\n    return x\n");

    // Pure-Python stdlib modules load fine.
    let ok = run(
        "lambda x: __import__('json').dumps([x])",
        &[input],
        &DataType::Utf8,
    );
    assert_eq!(
        ok.as_any().downcast_ref::<StringArray>().unwrap().value(2),
        "[3]"
    );
}

#[test]
fn functions_are_unpickled_once_per_interpreter() {
    let _serial = serial();
    init_python();
    let mut single = SubInterpreterPool::start(1).expect("start");
    let (digest, bytes) =
        payload("calls = [0]\ndef f(x):\n    calls[0] += 1\n    return calls[0]\n");
    let input = arc(Int64Array::from(vec![0, 0, 0]));
    for expected in [[1, 2, 3], [4, 5, 6]] {
        let output = single
            .call_rows(
                "counter",
                digest,
                &bytes,
                &[Arc::clone(&input)],
                3,
                &DataType::Int64,
                None,
            )
            .unwrap();
        assert_eq!(int64s(&output), &expected);
    }
    single.shutdown();
}

/// Calls to an unpickled UDF, and from it to a helper pickled with it, get specialized like
/// calls to functions made by `def` (CPython 3.13 never specializes calls to functions that
/// cloudpickle rebuilt, unless the pool gives them versions). Each row reports what it sees:
/// 2 if its caller's call is specialized, plus 1 if its own call of the helper is.
#[test]
fn calls_to_unpickled_functions_are_specialized() {
    let _serial = serial();
    // `calls(code)`: whether a call in `code` is specialized; `calls(code, name)`: whether
    // the call of `name` is.
    let probe = "import dis, sys\n\
         def calls(code, name=None):\n    \
         load = name is None\n    \
         for i in dis.get_instructions(code, adaptive=True):\n        \
         if i.argval == name and i.opname.startswith(('LOAD_GLOBAL', 'LOAD_DEREF')):\n            \
         load = True\n        \
         elif load and i.opname.startswith('CALL'):\n            \
         if i.opname == 'CALL_PY_EXACT_ARGS' or name is not None:\n                \
         return i.opname == 'CALL_PY_EXACT_ARGS'\n    \
         return False\n";
    let udf = payload(&format!(
        "{probe}def helper(x):\n    return x + 1\n\
         def f(x):\n    helper(x)\n    \
         return 2 * calls(sys._getframe(1).f_code) + calls(f.__code__, 'helper')\n"
    ));
    // The same through a closure: the UDF and its helper reach each other through cells.
    let closure = payload(&format!(
        "{probe}def make(k):\n    def helper(x):\n        return x + k\n    \
         def f(x):\n        helper(x)\n        \
         return 2 * calls(sys._getframe(1).f_code) + calls(f.__code__, 'helper')\n    \
         return f\n\
         f = make(1)\n"
    ));
    let input = arc(Int64Array::from_iter_values(0..3000));
    for (what, udf) in [("globals", &udf), ("closure", &closure)] {
        let output = call_payload("specialized", udf, &input, &DataType::Int64).unwrap();
        let seen = int64s(&output);
        // The adaptive interpreter specializes after a few calls; every chunk's last rows
        // must see both calls specialized.
        let specialized = seen.iter().filter(|&&s| s == 3).count();
        assert!(
            specialized > 2900 && seen[2999] == 3,
            "{what}: rows seeing both calls specialized: {specialized} of 3000; last row saw {}",
            seen[2999]
        );
    }
}

#[test]
fn a_thousand_small_calls_keep_the_thread_count() {
    let _serial = serial();
    let pool = pool();
    let (digest, bytes) = lambda("lambda x: x * 2");
    let input = arc(Int64Array::from(vec![1, 2, 3]));
    pool.call_rows(
        "small",
        digest,
        &bytes,
        &[Arc::clone(&input)],
        3,
        &DataType::Int64,
        None,
    )
    .unwrap();
    let (before, workers) = (threads(), worker_threads());
    for _ in 0..1000 {
        let output = pool
            .call_rows(
                "small",
                digest,
                &bytes,
                &[Arc::clone(&input)],
                3,
                &DataType::Int64,
                None,
            )
            .unwrap();
        assert_eq!(output.len(), 3);
    }
    assert_eq!(worker_threads(), workers);
    // Exact when the tests run one at a time; the slack covers the harness's own threads
    // starting and ending when they do not (a leak per call would show hundreds).
    assert!(
        threads() <= before + 4,
        "{before} threads became {}",
        threads()
    );
}

#[test]
fn works_when_the_caller_holds_the_main_gil() {
    let _serial = serial();
    init_python();
    let (digest, bytes) = lambda("lambda x: -x");
    let input = arc(Int64Array::from_iter_values(0..2000));
    // As when the executor runs inside a Python process and is driven from Python code.
    Python::attach(|_py| {
        let mut pool = SubInterpreterPool::start(2).expect("start while holding the GIL");
        let output = pool
            .call_rows(
                "neg",
                digest,
                &bytes,
                &[Arc::clone(&input)],
                2000,
                &DataType::Int64,
                None,
            )
            .unwrap();
        assert_eq!(int64s(&output)[1999], -1999);
        pool.shutdown();
    });
}

/// The best of five runs of `f` (the machine is shared).
fn best_of_five(mut f: impl FnMut()) -> std::time::Duration {
    (0..5)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

/// Per-row cost of trivial UDFs on one interpreter, against a plain Python loop in the main
/// interpreter (the per-core ceiling), and a CPU-bound UDF on one and two interpreters. Run by
/// hand: `cargo test --workspace --test subinterpreters -- --ignored --nocapture per_row_cost`.
#[test]
#[ignore = "a measurement, not a check"]
fn per_row_cost() {
    let _serial = serial();
    init_python();
    let rows = 1_000_000;
    let ints = arc(Int64Array::from_iter_values(0..rows as i64));
    let strings = arc(StringArray::from_iter_values(
        (0..rows).map(|i| format!("s{i}")),
    ));
    let mut single = SubInterpreterPool::start(1).expect("start");
    for (label, expr, input, ty) in [
        (
            "int -> int, x + 1",
            "lambda x: x + 1",
            ints,
            DataType::Int64,
        ),
        (
            "str -> str, identity",
            "lambda s: s",
            strings,
            DataType::Utf8,
        ),
    ] {
        let (digest, bytes) = lambda(expr);
        let args = [input];
        let time = best_of_five(|| {
            single
                .call_rows("bench", digest, &bytes, &args, rows, &ty, None)
                .unwrap();
        });
        let ns = time.as_nanos() as f64 / rows as f64;
        println!("one sub-interpreter, {label}: {ns:.0} ns/row");
    }
    single.shutdown();

    let (digest, bytes) = lambda("lambda x: sum(i * i for i in range(300)) + x");
    let args = [arc(Int64Array::from_iter_values(0..20_000))];
    for size in [1, 2] {
        let mut pool = SubInterpreterPool::start(size).expect("start");
        let time = best_of_five(|| {
            pool.call_rows("cpu", digest, &bytes, &args, 20_000, &DataType::Int64, None)
                .unwrap();
        });
        println!("{size} sub-interpreter(s), CPU-bound UDF, 20,000 rows: {time:?}");
        pool.shutdown();
    }

    let loop_ns = Python::attach(|py| -> PyResult<f64> {
        let globals = PyDict::new(py);
        py.run(
            c"import time
f = lambda x: x + 1
xs = list(range(1_000_000))
best = min(
    (lambda t: ([f(x) for x in xs], time.perf_counter() - t)[1])(time.perf_counter())
    for _ in range(5)
)
ns = best / len(xs) * 1e9
",
            Some(&globals),
            None,
        )?;
        globals.get_item("ns")?.unwrap().extract()
    })
    .unwrap();
    println!("main interpreter, [f(x) for x in xs] with f = lambda x: x + 1: {loop_ns:.0} ns/row");
}

#[test]
fn concurrent_callers_share_the_pool() {
    let _serial = serial();
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(pool());
    let udfs: Vec<_> = (0..4)
        .map(|k| (k, lambda(&format!("lambda x: x * {k}"))))
        .collect();
    std::thread::scope(|scope| {
        for (k, (digest, bytes)) in &udfs {
            scope.spawn(move || {
                for call in 0..30 {
                    let rows = 100 + call * 137;
                    let input = arc(Int64Array::from_iter_values(0..rows as i64));
                    let output = pool()
                        .call_rows(
                            "mul",
                            *digest,
                            bytes,
                            &[input],
                            rows,
                            &DataType::Int64,
                            None,
                        )
                        .unwrap();
                    let output = output.as_any().downcast_ref::<Int64Array>().unwrap();
                    assert!(
                        output
                            .values()
                            .iter()
                            .enumerate()
                            .all(|(i, v)| *v == i as i64 * k)
                    );
                }
            });
        }
    });
}

/// A UDF that never returns, on every interpreter of the pool: cancelling its call returns at
/// once, interrupts the Python code (KeyboardInterrupt at the next bytecode boundary), skips
/// the chunks not started, and leaves every interpreter serving the next call.
#[test]
fn cancelling_a_call_interrupts_its_udf_and_frees_the_interpreters() {
    let _serial = serial();
    let (digest, bytes) = lambda("lambda x: any(False for _ in iter(int, 1))");
    // Six chunks for three interpreters: three run, three wait in the queue.
    let rows = 6 * 300;
    let input = arc(Int64Array::from_iter_values(0..rows as i64));
    let token = Arc::new(CancelToken::default());
    let started = std::time::Instant::now();
    let error = std::thread::scope(|scope| {
        let canceller = Arc::clone(&token);
        scope.spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            canceller.cancel();
        });
        pool()
            .call_rows(
                "forever",
                digest,
                &bytes,
                &[input],
                rows,
                &DataType::Boolean,
                Some(&token),
            )
            .expect_err("a cancelled call fails")
            .to_string()
    });
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        error.contains("'forever'") && error.contains("cancelled"),
        "{error}"
    );
    // Every interpreter must be free again: calls with one chunk per interpreter (a stuck
    // interpreter would hang them, so they run on a thread given 30 s).
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..2 {
            let input = arc(Int64Array::from_iter_values(0..900));
            let output = run("lambda x: x + 1", &[input], &DataType::Int64);
            let output = output.as_any().downcast_ref::<Int64Array>().unwrap();
            assert_eq!(output.value(899), 900);
        }
        let _ = done.send(());
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the interpreters serve the next calls");
    // A token that never fires changes nothing.
    let quiet = CancelToken::default();
    let (digest, bytes) = lambda("lambda x: x * 2");
    let output = pool()
        .call_rows(
            "double",
            digest,
            &bytes,
            &[arc(Int64Array::from_iter_values(0..1000))],
            1000,
            &DataType::Int64,
            Some(&quiet),
        )
        .unwrap();
    assert_eq!(int64s(&output)[999], 1998);
}

/// Starting and stopping pools in a fresh process, where no sub-interpreter ran before: the
/// first interpreters to import `datetime` used to own its shared type data, and ending them
/// aborted the process ("munmap_chunk(): invalid pointer") unless the main interpreter
/// imported it first. Runs `pools_start_and_stop_in_a_fresh_process_child` in a child process.
#[test]
fn pools_start_and_stop_in_a_fresh_process() {
    let _serial = serial();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pools_start_and_stop_in_a_fresh_process_child",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "run in a child process by pools_start_and_stop_in_a_fresh_process"]
fn pools_start_and_stop_in_a_fresh_process_child() {
    init_python();
    for size in [2, 3, 8] {
        let mut pool = SubInterpreterPool::start(size).expect("start");
        pool.shutdown();
    }
    // And dropped rather than shut down, after a call.
    let pool = SubInterpreterPool::start(2).expect("start");
    let input = arc(TimestampSecondArray::from(vec![0]).with_timezone("Europe/Paris"));
    let (digest, bytes) = lambda("lambda t: t.isoformat()");
    let output = pool
        .call_rows("iso", digest, &bytes, &[input], 1, &DataType::Utf8, None)
        .unwrap();
    assert_eq!(output.len(), 1);
    drop(pool);
}

/// Fixed cost of one call (hand-off to the pool and back) on pools of one and two
/// interpreters, with 1 row and with 8192 rows (DataFusion's batch; split in two on two
/// interpreters). Run by hand:
/// `cargo test --workspace --test subinterpreters -- --ignored --nocapture cost_per_call`.
#[test]
#[ignore = "a measurement, not a check"]
fn cost_per_call() {
    let _serial = serial();
    init_python();
    let (digest, bytes) = lambda("lambda x: x");
    for size in [2, 1, 2, 1] {
        let mut pool = SubInterpreterPool::start(size).expect("start");
        for rows in [1usize, 8192] {
            let args = [arc(Int64Array::from_iter_values(0..rows as i64))];
            let calls = 2000;
            let time = best_of_five(|| {
                for _ in 0..calls {
                    pool.call_rows("c", digest, &bytes, &args, rows, &DataType::Int64, None)
                        .unwrap();
                }
            });
            let us = time.as_secs_f64() * 1e6 / calls as f64;
            println!("{size} interpreter(s), {rows} rows: {us:.1} us/call");
        }
        pool.shutdown();
    }
}

/// Per-row cost of an integer UDF called on 8192-row batches (DataFusion's) and on 1Mi-row
/// batches, on one interpreter, alternating; the difference is what each call's hand-off to
/// the interpreter and back costs per row. Run by hand:
/// `cargo test --workspace --test subinterpreters -- --ignored --nocapture rows_per_call`.
#[test]
#[ignore = "a measurement, not a check"]
fn rows_per_call() {
    let _serial = serial();
    let (digest, bytes) = payload("def f(x):\n    return (x * 31 + 7) % 1000003\n");
    let mut pool = SubInterpreterPool::start(1).expect("start");
    let total = 1 << 23;
    for round in 0..3 {
        for rows in [8192usize, 1 << 20] {
            let args = [arc(Int64Array::from_iter_values(
                (0..rows as i64).map(|i| 1_000_000 + 7 * i),
            ))];
            let time = best_of_five(|| {
                for _ in 0..total / rows {
                    pool.call_rows("mix", digest, &bytes, &args, rows, &DataType::Int64, None)
                        .unwrap();
                }
            });
            let ns = time.as_nanos() as f64 / total as f64;
            println!("round {round}, {rows} rows per call: {ns:.1} ns/row");
        }
    }
    pool.shutdown();
}

/// Finds words with a regular expression: every search allocates (and frees) a ~1.1 KiB
/// backtracking stack from the raw domain.
const FINDS_WORDS: &str = r#"
import re
WORD = re.compile(r"[a-z]+")
def f(text):
    return len(WORD.findall(text))
"#;

#[test]
fn raw_blocks_freed_by_a_udf_are_reused_on_its_interpreter() {
    let _serial = serial();
    let single = OnOneInterpreter::new(FINDS_WORDS);
    // Settings that hook or replace CPython's allocators turn reuse off (or, for
    // `PYTHONMALLOC=malloc`, take these blocks past the raw domain).
    let hooked = ["PYTHONTRACEMALLOC", "PYTHONDEVMODE"]
        .iter()
        .any(|var| std::env::var_os(var).is_some())
        || std::env::var("PYTHONMALLOC").is_ok_and(|name| name != "pymalloc");
    if hooked {
        eprintln!("skipped: Python's allocators are set by the environment");
        return;
    }
    assert_eq!(reuse_status(), Ok(()));
    let rows = 3000;
    let texts: Vec<String> = (0..rows).map(|i| format!("alpha beta {i} gamma")).collect();
    let before = reused_blocks();
    let counts = single.call(&[arc(StringArray::from(texts))], &DataType::Int64);
    assert_eq!(int64s(&counts), vec![3; rows]);
    // Three searches a row find words (and one more finds none): each needs a stack.
    let reused = reused_blocks() - before;
    assert!(
        reused >= 3 * rows as u64,
        "{reused} blocks reused for {rows} rows"
    );
}

/// Builds, checks and drops `bytes` objects of sizes around and above pymalloc's 512-byte
/// limit (raw blocks), some kept across rows, and returns how many held the wrong content.
const MIXES_BLOCK_SIZES: &str = "
kept = {}
def f(x):
    wrong = 0
    for size in (500, 513, 767, 768, 1094, 2000, 4096, 8192, 8193, 20000):
        fill = (x + size) % 251
        blob = bytes([fill]) * size
        grown = bytearray(blob)
        grown += b'.' * (x % 700)
        if blob.count(fill) != size or grown[:size] != blob:
            wrong += 1
        if x % 7 == 0:
            kept[(x, size)] = (fill, blob)
    for (row, size), (fill, blob) in list(kept.items())[-20:]:
        if blob != bytes([fill]) * size:
            wrong += 1
    if len(kept) > 500:
        kept.clear()
    return wrong
";

#[test]
fn reused_raw_blocks_keep_their_contents() {
    let _serial = serial();
    let input = arc(Int64Array::from((0..2000).collect::<Vec<i64>>()));
    let wrong = call_payload(
        "mixes",
        &payload(MIXES_BLOCK_SIZES),
        &input,
        &DataType::Int64,
    )
    .unwrap();
    assert_eq!(int64s(&wrong), vec![0; 2000]);
}
