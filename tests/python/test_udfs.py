"""Stock datafusion-python UDFs (scalar, aggregate, window) travel inside plans and run on the
cluster's executors with the same results as a local datafusion context."""

from __future__ import annotations

import sys

import cloudpickle
import datafusion
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from compare import assert_same_result
from datafusion import Accumulator, col, udaf, udf, udwf
from datafusion.user_defined import WindowEvaluator

import pickleball

pytestmark = pytest.mark.timeout(120)

# Executors cannot import this test module: ship its functions by value, as a user's
# notebook or script (__main__) is shipped.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

THRESHOLD = 30
OFFSET = {"value": 7}  # a closure over a mutable object travels too


def _is_big(x: pa.Array) -> pa.Array:
    return pc.greater(x, THRESHOLD)


def _shift(x: pa.Array) -> pa.Array:
    return pc.add(x, OFFSET["value"])


def _label(x: pa.Array) -> pa.Array:
    return pc.utf8_upper(x)


class Summer(Accumulator):
    """Sum with retract support."""

    def __init__(self) -> None:
        self.total = 0

    def update(self, values: pa.Array) -> None:
        self.total += pc.sum(values).as_py() or 0

    def merge(self, states: list[pa.Array]) -> None:
        self.total += pc.sum(states[0]).as_py() or 0

    def retract_batch(self, values: pa.Array) -> None:
        self.total -= pc.sum(values).as_py() or 0

    def state(self) -> list[pa.Scalar]:
        return [pa.scalar(self.total, pa.int64())]

    def evaluate(self) -> pa.Scalar:
        return pa.scalar(self.total, pa.int64())


class RunningSum(WindowEvaluator):
    """Cumulative sum over the partition, in one call."""

    def evaluate_all(self, values: list[pa.Array], num_rows: int) -> pa.Array:
        return pc.cumulative_sum(values[0])


def make_udfs() -> list[object]:
    limit = THRESHOLD  # closure over a local
    return [
        udf(_is_big, [pa.int64()], pa.bool_(), "immutable", name="is_big"),
        udf(_shift, [pa.int64()], pa.int64(), "immutable", name="shift"),
        udf(_label, [pa.string()], pa.string(), "immutable", name="label"),
        udf(lambda x: pc.less_equal(x, limit), [pa.int64()], pa.bool_(), "stable", name="small"),
        udaf(Summer, [pa.int64()], pa.int64(), [pa.int64()], "immutable", name="my_sum"),
        udwf(RunningSum, [pa.int64()], pa.int64(), "immutable", name="running_sum"),
    ]


def register(ctx: datafusion.SessionContext) -> None:
    for f in make_udfs():
        if isinstance(f, datafusion.ScalarUDF):
            ctx.register_udf(f)
        elif isinstance(f, datafusion.AggregateUDF):
            ctx.register_udaf(f)
        else:
            ctx.register_udwf(f)
    ctx.from_pydict(
        {
            "id": list(range(60)),
            "fare": [(i * 17) % 55 for i in range(60)],
            "vendor": [["acme", "blue", "cab"][i % 3] for i in range(60)],
        },
        name="trips",
    )
    ctx.from_pydict({"vendor": ["acme", "blue", "cab"], "fleet": [5, 8, 13]}, name="vendors")


PLACEMENTS = [
    "select id, is_big(fare) as big from trips",
    "select count(*) as n from trips where is_big(fare)",
    "select is_big(fare) as big, count(*) as n from trips group by is_big(fare)",
    "select t.id, v.fleet from trips t join vendors v on label(t.vendor) = upper(v.vendor)",
    "select id, fare from trips order by shift(fare) desc, id limit 10",
    "select vendor, sum(fare) as s from trips group by vendor having my_sum(fare) > 300",
    "select id, rank() over (partition by is_big(fare) order by id) as r from trips",
    "select id, shift(shift(fare) * 2) + 1 as nested, coalesce(label(vendor), 'x') as l from trips",
    "select id from trips where is_big(fare) and small(shift(fare)) and label(vendor) = 'CAB'",
    "select vendor, my_sum(fare) as s, my_sum(shift(fare)) as s2 from trips group by vendor",
    "select vendor, id, running_sum(fare) over (partition by vendor order by id) as rs from trips",
    "select my_sum(fare) as total from (select shift(fare) as fare, vendor from trips) "
    "where vendor in (select vendor from trips group by vendor having my_sum(fare) > 0)",
]


@pytest.mark.parametrize("query", PLACEMENTS, ids=[f"p{i:02d}" for i in range(len(PLACEMENTS))])
def test_udf_placements_match_local(ctx: pickleball.SessionContext, query: str) -> None:
    local = datafusion.SessionContext()
    register(ctx)
    register(local)
    assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())


def test_udfs_in_dataframe_expressions_match_local(ctx: pickleball.SessionContext) -> None:
    local = datafusion.SessionContext()
    register(ctx)
    register(local)
    is_big, shift, _label_udf, _small, my_sum, running_sum = make_udfs()

    def job(c: datafusion.SessionContext) -> pa.Table:
        df = c.table("trips").filter(is_big(col("fare")))
        df = df.aggregate([col("vendor")], [my_sum(shift(col("fare"))).alias("s")])
        return df.sort(col("vendor")).to_arrow_table()

    assert_same_result(job(ctx), job(local), ordered=True)
    windowed = ctx.table("trips").select(
        col("id"), running_sum(col("fare")).partition_by(col("vendor")).order_by(col("id")).build()
    )
    reference = local.table("trips").select(
        col("id"), running_sum(col("fare")).partition_by(col("vendor")).order_by(col("id")).build()
    )
    assert_same_result(windowed.to_arrow_table(), reference.to_arrow_table())


def test_a_raising_udf_names_itself_the_exception_and_the_traceback(
    ctx: pickleball.SessionContext,
) -> None:
    def explode(x: pa.Array) -> pa.Array:
        raise ValueError("fare out of range")

    ctx.register_udf(udf(explode, [pa.int64()], pa.int64(), "immutable", name="explode"))
    ctx.from_pydict({"fare": [1, 2, 3]}, name="fares")
    with pytest.raises(pickleball.ExecutionError) as error:
        ctx.sql("select explode(fare) from fares").collect()
    message = str(error.value)
    assert "explode" in message
    assert "ValueError" in message
    assert "fare out of range" in message
    assert "Traceback" in message
    # The executor survives and serves the next job.
    assert ctx.sql("select sum(fare) as s from fares").to_pylist() == [{"s": 6}]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (lambda x: pa.array([1]), "returned 1 values for 3 input rows"),
        (lambda x: pa.array(["a", "b", "c"]), "declared to return Int64"),
        (lambda x: [1, 2, 3], "must return a pyarrow Array"),
    ],
    ids=["wrong-length", "wrong-type", "not-an-array"],
)
def test_a_udf_returning_the_wrong_thing_is_a_clear_error(
    ctx: pickleball.SessionContext, body: object, expected: str
) -> None:
    ctx.register_udf(udf(body, [pa.int64()], pa.int64(), "immutable", name="sloppy"))
    ctx.from_pydict({"fare": [1, 2, 3]}, name="fares")
    with pytest.raises(pickleball.ExecutionError, match=expected) as error:
        ctx.sql("select sloppy(fare) from fares").collect()
    assert "sloppy" in str(error.value)


def test_a_udf_importing_a_missing_module_says_which_and_how_to_fix(
    ctx: pickleball.SessionContext,
) -> None:
    def needs_module(x: pa.Array) -> pa.Array:
        import pickleball_no_such_module  # noqa: F401

        return x

    ctx.register_udf(udf(needs_module, [pa.int64()], pa.int64(), "immutable", name="needs_mod"))
    ctx.from_pydict({"fare": [1]}, name="fares")
    with pytest.raises(pickleball.ExecutionError) as error:
        ctx.sql("select needs_mod(fare) from fares").collect()
    message = str(error.value)
    assert "ModuleNotFoundError" in message
    assert "pickleball_no_such_module" in message
    assert "install it" in message


def _plan_with_udf(ctx: pickleball.SessionContext) -> tuple[bytes, int]:
    ctx.register_udf(udf(_shift, [pa.int64()], pa.int64(), "immutable", name="shift"))
    ctx.from_pydict({"fare": [1, 2, 3]}, name="fares")
    plan = ctx.sql("select shift(fare) as s from fares").optimized_logical_plan().to_bytes()
    at = plan.index(b"DFPYUDF")
    return plan, at


def test_a_payload_from_another_python_minor_version_names_both(
    ctx: pickleball.SessionContext,
) -> None:
    plan, at = _plan_with_udf(ctx)
    major, minor = sys.version_info[:2]
    assert plan[at + 8 : at + 10] == bytes([major, minor])
    stamped = plan[: at + 9] + bytes([minor - 1]) + plan[at + 10 :]
    with pytest.raises(pickleball.ExecutionError) as error:
        list(ctx._cluster.execute(stamped, ctx._memory_tables))
    message = str(error.value)
    assert "shift" in message
    assert f"Python {major}.{minor - 1}" in message
    assert f"Python {major}.{minor}" in message
    assert "not portable across Python minor versions" in message


def test_a_corrupt_payload_is_a_clear_error(ctx: pickleball.SessionContext) -> None:
    plan, at = _plan_with_udf(ctx)
    corrupt = plan[: at + 12] + b"\x00\xff\x00\xff" + plan[at + 16 :]
    with pytest.raises(pickleball.ExecutionError) as error:
        list(ctx._cluster.execute(corrupt, ctx._memory_tables))
    assert "shift" in str(error.value)
    assert "unreadable datafusion-python payload" in str(error.value)
    assert ctx.sql("select 1 as one").to_pylist() == [{"one": 1}]


def test_a_strict_cluster_refuses_inline_udfs_naming_the_udf_and_the_remedy(
    tmp_path: object,
) -> None:
    from conftest import CliCluster

    cluster = CliCluster(executors=1, extra=("--python-udfs=deny",))
    try:
        strict = pickleball.connect(cluster.url)
        strict.register_udf(udf(_shift, [pa.int64()], pa.int64(), "immutable", name="shift"))
        strict.from_pydict({"fare": [1, 2, 3]}, name="fares")
        with pytest.raises(pickleball.ExecutionError) as error:
            strict.sql("select shift(fare) from fares").collect()
        message = str(error.value)
        assert "'shift'" in message
        assert "--python-udfs deny" in message
        assert "--python-udfs allow" in message
        # Jobs without Python UDFs still run.
        assert strict.sql("select sum(fare) as s from fares").to_pylist() == [{"s": 6}]
    finally:
        cluster.stop()


def test_stock_decorator_form_registers_and_runs_like_the_issue_example(
    ctx: pickleball.SessionContext,
) -> None:
    threshold = 30

    @udf([pa.int64()], pa.bool_(), "immutable", name="big")
    def big(x: pa.Array) -> pa.Array:
        return pc.greater(x, threshold)

    @udaf(pa.int64(), pa.int64(), [pa.int64()], "immutable", name="total")
    def total() -> Summer:
        return Summer()

    ctx.register_udf(big)
    ctx.register_udaf(total)
    ctx.from_pydict({"fare": [10, 31, 50, 29]}, name="fares")
    assert ctx.sql("select count(*) as n from fares where big(fare)").to_pylist() == [{"n": 2}]
    assert ctx.sql("select total(fare) as t from fares").to_pylist() == [{"t": 120}]
    assert ctx.table("fares").select(big(col("fare")).alias("b")).to_pydict() == {
        "b": [False, True, True, False]
    }


def _plus_one(x: int) -> int:
    return x + 1


def _calls_specialized(code: object) -> bool:
    import dis

    return any(i.opname == "CALL_PY_EXACT_ARGS" for i in dis.get_instructions(code, adaptive=True))


def _probe(x: pa.Array) -> pa.Array:
    for i in range(64):  # enough calls for the adaptive interpreter to specialize
        _plus_one(i)
    return pa.array([_calls_specialized(_probe.__code__)] * len(x))


def test_calls_inside_main_lane_udfs_are_specialized_as_locally(
    ctx: pickleball.SessionContext,
) -> None:
    """CPython 3.13 never specializes calls to functions cloudpickle rebuilt (they have no
    function version); executors give them the version a ``def`` would, in the main
    interpreter as in the sub-interpreters, so a UDF's calls to its helpers run as fast as
    locally."""
    probe = udf(_probe, [pa.int64()], pa.bool_(), "volatile", name="probe")
    local = datafusion.SessionContext()
    for c in (ctx, local):
        c.register_udf(probe)
        c.from_pydict({"x": [1, 2, 3]}, name="probed")
    query = "select probe(x) as s from probed"
    assert local.sql(query).to_pydict() == {"s": [True] * 3}
    assert ctx.sql(query).to_pydict() == {"s": [True] * 3}
