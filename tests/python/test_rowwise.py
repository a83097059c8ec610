"""Row-wise ``pickleball.udf`` functions: the same results on the cluster (sub-interpreters,
builtins converted in Rust) as in a local datafusion context (row by row through pyarrow)."""

from __future__ import annotations

import datetime
import decimal
import re
import sys
import zoneinfo

import cloudpickle
import datafusion
import pyarrow as pa
import pyarrow.parquet
import pytest
from compare import assert_same_result
from conftest import CliCluster
from datafusion import col

import pickleball

pytestmark = pytest.mark.timeout(120)

cloudpickle.register_pickle_by_value(sys.modules[__name__])

UTC = datetime.UTC
PARIS = zoneinfo.ZoneInfo("Europe/Paris")

# (Arrow type, values with a null) for every type the row-wise lane converts.
TYPES: list[tuple[str, pa.DataType, list]] = [
    ("int8", pa.int8(), [-128, 0, 127, None]),
    ("int16", pa.int16(), [-32768, 7, None]),
    ("int32", pa.int32(), [-(2**31), 2**31 - 1, None]),
    ("int64", pa.int64(), [-(2**63), 2**63 - 1, None]),
    ("uint8", pa.uint8(), [0, 255, None]),
    ("uint16", pa.uint16(), [0, 65535, None]),
    ("uint32", pa.uint32(), [0, 2**32 - 1, None]),
    ("uint64", pa.uint64(), [0, 2**64 - 1, None]),
    ("float32", pa.float32(), [1.5, -0.25, None]),
    ("float64", pa.float64(), [1e300, -2.5, float("inf"), None]),
    ("bool", pa.bool_(), [True, False, None]),
    ("utf8", pa.string(), ["", "héllo", "日本", None]),
    ("large_utf8", pa.large_string(), ["a", None]),
    ("utf8_view", pa.string_view(), ["a much longer string than twelve bytes", "x", None]),
    ("binary", pa.binary(), [b"", b"\x00\xff", None]),
    ("large_binary", pa.large_binary(), [b"abc", None]),
    ("date32", pa.date32(), [datetime.date(1970, 1, 1), datetime.date(2024, 2, 29), None]),
    ("date64", pa.date64(), [datetime.date(1999, 12, 31), None]),
    ("timestamp_us", pa.timestamp("us"), [datetime.datetime(2024, 5, 6, 7, 8, 9, 123456), None]),
    ("timestamp_s", pa.timestamp("s"), [datetime.datetime(1960, 1, 1), None]),
    (
        "timestamp_utc",
        pa.timestamp("us", tz="UTC"),
        [datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC), None],
    ),
    (
        "timestamp_paris",
        pa.timestamp("ms", tz="Europe/Paris"),
        [datetime.datetime(2024, 7, 1, 12, 0, tzinfo=PARIS), None],
    ),
    (
        "timestamp_offset",
        pa.timestamp("us", tz="+05:30"),
        [
            datetime.datetime(
                2024, 1, 1, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))
            ),
            None,
        ],
    ),
    ("time64_us", pa.time64("us"), [datetime.time(23, 59, 59, 999999), None]),
    ("time32_ms", pa.time32("ms"), [datetime.time(1, 2, 3, 4000), None]),
    ("duration_us", pa.duration("us"), [datetime.timedelta(days=-1, microseconds=5), None]),
    (
        "decimal",
        pa.decimal128(20, 4),
        [decimal.Decimal("12345678901234.5678"), decimal.Decimal("-0.0001"), None],
    ),
    ("list_int", pa.list_(pa.int64()), [[1, None, 3], [], None]),
    ("large_list_str", pa.large_list(pa.string()), [["a", "b"], None]),
    (
        "struct",
        pa.struct([("x", pa.int32()), ("y", pa.string())]),
        [{"x": 1, "y": "a"}, {"x": None, "y": None}, None],
    ),
    ("map", pa.map_(pa.string(), pa.int64()), [[("a", 1), ("b", None)], [], None]),
    ("null", pa.null(), [None, None]),
]


def _identity(value: object) -> object:
    return value


@pytest.mark.parametrize(("label", "arrow_type", "values"), TYPES, ids=[t[0] for t in TYPES])
def test_every_type_round_trips_like_local(
    ctx: pickleball.SessionContext,
    local: datafusion.SessionContext,
    label: str,
    arrow_type: pa.DataType,
    values: list,
) -> None:
    same = pickleball.udf(
        _identity, input_types=[arrow_type], return_type=arrow_type, name=f"same_{label}"
    )
    table = pa.table({"v": pa.array(values, arrow_type)})
    for context in (ctx, local):
        context.register_udf(same)
        context.register_record_batches("t", [table.to_batches()])
    query = f"select same_{label}(v) as v from t"
    assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())


def test_dictionary_encoded_inputs_arrive_decoded(
    ctx: pickleball.SessionContext, local: datafusion.SessionContext
) -> None:
    @pickleball.udf
    def tag(word: str | None) -> str | None:
        return None if word is None else f"<{word}>"

    words = pa.array(["a", "b", None, "a"]).dictionary_encode()
    for context in (ctx, local):
        context.register_udf(tag)
        context.register_record_batches("t", [[pa.record_batch({"w": words})]])
    query = "select tag(w) as t from t"
    assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())


def assert_calls_uncast(ctx: pickleball.SessionContext, query: str, call: str) -> None:
    """The cluster's plans of ``query`` hold ``call`` and no cast anywhere."""
    plan = "\n".join(row["plan"] for row in ctx.sql(f"explain {query}").to_pylist())
    assert call in plan, plan
    assert "CAST" not in plan, plan


def test_string_columns_reach_row_wise_udfs_without_a_cast(
    ctx: pickleball.SessionContext, local: datafusion.SessionContext, tmp_path
) -> None:
    """Parquet strings are read as Utf8View; a ``str`` UDF takes them without a copy to Utf8."""

    @pickleball.udf
    def shout(word: str, times: int) -> str:
        return word.upper() * times

    for region in ("north", "south"):
        part = tmp_path / f"region={region}"
        part.mkdir()
        words = [f"{region}-{i}" for i in range(40)]
        pa.parquet.write_table(
            pa.table({"w": words, "n": [i % 3 for i in range(40)]}), part / "0.parquet"
        )
    for context in (ctx, local):
        context.register_udf(shout)
        context.register_parquet(
            "words", str(tmp_path), table_partition_cols=[("region", pa.string())]
        )
    queries = (
        "select shout(w, n) as s from words",
        "select region, count(distinct shout(w, n)), max(shout(region, 2)) from words group by region",
        "select w from words where shout(w, 1) like '%-1%' order by w",
        # A join filter reading both sides inside one argument.
        "select count(*) as n from words a join words b "
        "on a.n = b.n and shout(a.w || b.w, 1) like 'NORTH-1%SOUTH%'",
    )
    for query in queries:
        assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())
        assert_calls_uncast(ctx, query, "shout(w")


def test_bytes_udfs_take_every_binary_column(
    ctx: pickleball.SessionContext, local: datafusion.SessionContext, tmp_path
) -> None:
    @pickleball.udf
    def tail(data: bytes | None) -> bytes | None:
        return None if data is None else data[-2:]

    blobs = [b"\x00\x01\x02", None, b"xyz"]
    pa.parquet.write_table(pa.table({"b": pa.array(blobs, pa.binary())}), tmp_path / "b.parquet")
    memory = pa.table({"l": pa.array(blobs, pa.large_binary()), "v": pa.array(blobs, pa.binary())})
    for context in (ctx, local):
        context.register_udf(tail)
        context.register_parquet("files", str(tmp_path / "b.parquet"))  # read as binary_view
        context.register_record_batches("memory", [memory.to_batches()])
    for query in (
        "select tail(b) as t from files",
        "select tail(l) as a, tail(v) as b from memory",
    ):
        assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())
        assert_calls_uncast(ctx, query, "tail(")
    got = ctx.sql("select tail(b) as t from files").to_pydict()["t"]
    assert sorted(got, key=repr) == sorted([b"\x01\x02", None, b"yz"], key=repr)


@pickleball.udf
def clean(name: str, age: int | None) -> str:
    """The README's example."""
    return f"{name.strip().title()} ({age if age is not None else '?'})"


WORD = re.compile(r"[a-z]+")


@pickleball.udf
def keywords(text: str | None) -> dict[str, int] | None:
    """Dict- and regex-heavy: word counts."""
    if text is None:
        return None
    counts: dict[str, int] = {}
    for word in WORD.findall(text.lower()):
        counts[word] = counts.get(word, 0) + 1
    return counts


def test_udfs_in_sql_and_dataframes_match_local(
    ctx: pickleball.SessionContext, local: datafusion.SessionContext
) -> None:
    people = pa.table(
        {
            "name": [f"  person {i} " for i in range(3000)],
            "age": [None if i % 7 == 0 else i % 90 for i in range(3000)],
            "bio": [
                None if i % 11 == 0 else f"likes cats and dogs {i % 5} cats" for i in range(3000)
            ],
        }
    )
    for context in (ctx, local):
        context.register_udf(clean)
        context.register_udf(keywords)
        context.register_record_batches("people", [people.to_batches(max_chunksize=500)])
    for query in (
        "select clean(name, age) as c from people",
        "select keywords(bio) as k from people where age > 30",
        "select age % 3 as g, count(distinct clean(name, age)) as n from people group by age % 3",
        "select name from people where clean(name, age) like '%(?)' order by name",
    ):
        assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())
    got = ctx.table("people").select(clean(col("name"), col("age")).alias("c")).to_arrow_table()
    expected = local.table("people").select(clean(col("name"), col("age")).alias("c"))
    assert_same_result(got, expected.to_arrow_table())


def test_calling_the_udf_on_values_calls_the_function() -> None:
    assert clean(" ada ", None) == "Ada (?)"
    assert repr(clean) == "pickleball.udf clean(string, int64) -> string [subinterpreter]"


def test_types_come_from_hints_or_arguments() -> None:
    @pickleball.udf(volatility="volatile", name="Mixed")
    def mixed(a: list[int] | None, b: dict[str, float], c: datetime.date) -> bytes:
        return b""

    assert mixed.input_types == [
        pa.list_(pa.int64()),
        pa.map_(pa.string(), pa.float64()),
        pa.date32(),
    ]
    assert mixed.return_type == pa.binary()
    assert mixed.name == "Mixed"
    with pytest.raises(TypeError, match="no type hint for a, b"):
        pickleball.udf(lambda a, b: a, input_types=None, return_type=pa.int64(), name="x")
    with pytest.raises(TypeError, match=r"decimal\.Decimal needs a precision"):

        @pickleball.udf
        def money(x: decimal.Decimal) -> int:
            return 0

    with pytest.raises(ValueError, match="a lambda needs a name"):
        pickleball.udf(lambda x: x, input_types=[pa.int64()], return_type=pa.int64())


def test_a_raising_udf_names_itself_and_the_executor_goes_on(
    ctx: pickleball.SessionContext,
) -> None:
    @pickleball.udf
    def fragile(x: int) -> int:
        if x == 3:
            raise ValueError(f"three is not welcome ({x})")
        return x

    ctx.register_udf(fragile)
    ctx.from_pydict({"x": [1, 2, 3, 4]}, name="nums")
    with pytest.raises(pickleball.ExecutionError) as error:
        ctx.sql("select fragile(x) from nums").collect()
    message = str(error.value)
    assert "'fragile'" in message
    assert "ValueError: three is not welcome (3)" in message
    assert "raise ValueError" in message  # the traceback's source line
    assert ctx.sql("select fragile(x) as y from nums where x <> 3").to_pydict() == {"y": [1, 2, 4]}


def test_a_value_the_return_type_cannot_hold_names_the_row(
    ctx: pickleball.SessionContext,
) -> None:
    @pickleball.udf
    def half(x: int) -> int:
        return x / 2 if x == 5 else x  # a float where an int is declared

    ctx.register_udf(half)
    ctx.from_pydict({"x": [2, 4, 5]}, name="nums")
    with pytest.raises(pickleball.ExecutionError) as error:
        ctx.sql("select half(x) from nums").collect()
    message = str(error.value)
    assert "'half'" in message
    assert "2.5" in message
    assert "Int64" in message or "int64" in message
    assert "row 2" in message


def test_a_udf_using_pyarrow_falls_back_to_the_main_interpreter(
    ctx: pickleball.SessionContext, local: datafusion.SessionContext
) -> None:
    @pickleball.udf
    def arrow_len(s: str) -> int:
        import pyarrow.compute as pc

        return pc.utf8_length(pa.scalar(s)).as_py()

    @pickleball.udf(lane="main")
    def main_only(x: int) -> int:
        return x + 1

    for context in (ctx, local):
        context.register_udf(arrow_len)
        context.register_udf(main_only)
        context.from_pydict({"s": ["a", "bcd"], "x": [1, 2]}, name="t")
    query = "select arrow_len(s) as n, main_only(x) as m from t"
    assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())


def test_main_lane_rows_match_local_and_name_the_failing_row(
    ctx: pickleball.SessionContext, local: datafusion.SessionContext
) -> None:
    @pickleball.udf(lane="main")
    def joined(a: int, b: str | None) -> str:
        return f"{a}:{b}"

    @pickleball.udf(lane="main", volatility="volatile", return_type=pa.int64(), input_types=[])
    def seven() -> int:
        return 7

    @pickleball.udf(lane="main")
    def picky(x: int) -> int:
        if x == 30:
            raise ValueError(f"no thirty ({x})")
        return x

    for context in (ctx, local):
        for f in (joined, seven, picky):
            context.register_udf(f)
        context.from_pydict({"a": [10, 20, 30], "b": ["x", None, "z"]}, name="t3")
    query = "select joined(a, b) as j from t3"
    assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())
    # Without arguments: called once per row (a local context cannot tell it the row count).
    assert ctx.sql("select seven() as s from t3").to_pydict() == {"s": [7, 7, 7]}
    with pytest.raises(pickleball.ExecutionError) as error:
        ctx.sql("select picky(a) from t3").collect()
    message = str(error.value)
    assert "'picky'" in message
    assert "ValueError: no thirty (30)" in message
    assert "running on row 2" in message
    assert "raise ValueError" in message  # the traceback: its source line ...
    assert "in picky" in message  # its frame, named


def test_large_inputs_keep_their_order(ctx: pickleball.SessionContext) -> None:
    @pickleball.udf
    def mix(x: int) -> int:
        return (x * 31 + 7) % 1000003

    n = 200_000
    ctx.register_udf(mix)
    ctx.from_pydict({"x": list(range(n))}, name="big")
    got = ctx.sql("select x, mix(x) as y from big order by x").to_pydict()
    assert got["y"] == [(x * 31 + 7) % 1000003 for x in range(n)]


@pickleball.udf
def thread_name(x: int) -> str:
    """The name of the OS thread running this row (Linux), whichever interpreter runs it."""
    import threading

    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as comm:
        return comm.read().strip()


@pytest.mark.parametrize(
    ("flags", "on_sub_interpreters"),
    [((), True), (("--subinterpreters=0",), False)],
    ids=["sub-interpreters", "main-interpreter-only"],
)
def test_the_executor_binary_runs_row_wise_udfs_on_its_sub_interpreters(
    local: datafusion.SessionContext, flags: tuple[str, ...], on_sub_interpreters: bool
) -> None:
    # Without sub-interpreters (--subinterpreters=0, or an executor built for Python < 3.12),
    # the same UDFs run in the main interpreter with the same results.
    cluster = CliCluster(executors=1, vcores=2, binaries=True, executor_extra=flags)
    try:
        ctx = pickleball.connect(cluster.url)
        people = {"name": [" ada ", "bob"], "age": [36, None], "bio": ["a b a", None]}
        for context in (ctx, local):
            context.register_udf(clean)
            context.register_udf(keywords)
            context.from_pydict(people, name="people")
        query = "select clean(name, age) as c, keywords(bio) as k from people"
        assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())
        ctx.register_udf(thread_name)
        names = set(ctx.sql("select thread_name(age) as t from people").to_pydict()["t"])
        in_pool = {name.startswith("pickleball-subi") for name in names}
        assert in_pool == {on_sub_interpreters}, names
    finally:
        cluster.stop()
