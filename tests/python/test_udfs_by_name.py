"""Strict mode the other way round: clients send Python UDFs by name, executors run the UDFs
registered from a ``--udf-module`` file, and a ``--python-udfs deny`` cluster accepts them."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import datafusion
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from compare import assert_same_result
from conftest import PICKLEBALL, CliCluster
from datafusion import udf

import pickleball
from pickleball.context import _function_behind

pytestmark = pytest.mark.timeout(120)

# The executors' definitions differ from the client's on purpose: a by-name job must run the
# executors' code, and the results show which code ran.
UDF_MODULE = textwrap.dedent(
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from datafusion import Accumulator, udaf, udf


    @udf([pa.int64()], pa.int64(), "immutable", name="shift")
    def shift(x):
        return pc.add(x, 1000)


    class Total(Accumulator):
        def __init__(self):
            self.total = 0

        def update(self, values):
            self.total += pc.sum(values).as_py() or 0

        def merge(self, states):
            self.total += pc.sum(states[0]).as_py() or 0

        def state(self):
            return [pa.scalar(self.total, pa.int64())]

        def evaluate(self):
            return pa.scalar(self.total * 10, pa.int64())


    total = udaf(Total, pa.int64(), pa.int64(), [pa.int64()], "immutable", name="total")


    import pickleball


    @pickleball.udf
    def tidy(word: str) -> str:
        return word.strip().upper()
    """
)

FARES = {"fare": [1, 2, 3, 4], "zone": ["a", "b", "a", "b"]}


def _client_shift(x: pa.Array) -> pa.Array:
    return pc.add(x, 7)


@pickleball.udf
def tidy(word: str) -> str:
    """The client's version; the executors' upper-cases."""
    return word.strip().lower()


@pytest.fixture(scope="module")
def udf_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("udf_module") / "fare_udfs.py"
    path.write_text(UDF_MODULE)
    return path


@pytest.fixture(scope="module")
def strict_cluster(udf_module: Path) -> Iterator[CliCluster]:
    cluster = CliCluster(
        executors=2,
        extra=("--python-udfs=deny",),
        executor_extra=(f"--udf-module={udf_module}",),
    )
    yield cluster
    cluster.stop()


def _by_name_context(url: str) -> pickleball.SessionContext:
    ctx = pickleball.connect(url).with_python_udf_inlining(enabled=False)
    ctx.register_udf(udf(_client_shift, [pa.int64()], pa.int64(), "immutable", name="shift"))
    ctx.from_pydict(FARES, name="fares")
    return ctx


def _local_with_module(udf_module: Path) -> datafusion.SessionContext:
    namespace: dict[str, object] = {}
    exec(compile(udf_module.read_text(), str(udf_module), "exec"), namespace)
    local = datafusion.SessionContext()
    # The stock context does not accept the decorator's wrapper; pickleball's does.
    local.register_udf(_function_behind(namespace["shift"], datafusion.ScalarUDF))
    local.register_udaf(namespace["total"])
    local.from_pydict(FARES, name="fares")
    return local


def test_by_name_udfs_run_the_executors_code_on_a_strict_cluster(
    strict_cluster: CliCluster, udf_module: Path
) -> None:
    ctx = _by_name_context(strict_cluster.url)
    assert ctx.python_udf_inlining is False
    local = _local_with_module(udf_module)
    for query in (
        "select fare, shift(fare) as s from fares",
        "select zone, sum(shift(fare)) as s from fares group by zone",
        "select fare from fares where shift(fare) > 1002",
    ):
        assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())


def test_by_name_aggregate_runs_on_a_strict_cluster(
    strict_cluster: CliCluster, udf_module: Path
) -> None:
    ctx = _by_name_context(strict_cluster.url)

    class ClientTotal(datafusion.Accumulator):
        def __init__(self) -> None:
            self.total = 0

        def update(self, values: pa.Array) -> None:
            self.total += pc.sum(values).as_py() or 0

        def merge(self, states: list[pa.Array]) -> None:
            self.total += pc.sum(states[0]).as_py() or 0

        def state(self) -> list[pa.Scalar]:
            return [pa.scalar(self.total, pa.int64())]

        def evaluate(self) -> pa.Scalar:
            return pa.scalar(self.total, pa.int64())

    ctx.register_udaf(
        datafusion.udaf(ClientTotal, pa.int64(), pa.int64(), [pa.int64()], "immutable", "total")
    )
    query = "select zone, total(fare) as t from fares group by zone"
    local = _local_with_module(udf_module)
    assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())


def test_the_inlining_setting_is_per_context_and_shares_the_session(
    strict_cluster: CliCluster,
) -> None:
    inline = pickleball.connect(strict_cluster.url)
    inline.register_udf(udf(_client_shift, [pa.int64()], pa.int64(), "immutable", name="shift"))
    inline.from_pydict(FARES, name="fares")
    by_name = inline.with_python_udf_inlining(enabled=False)
    # Same session: the table and the UDF registered on `inline` are visible.
    assert by_name.sql("select shift(fare) as s from fares order by s").to_pydict() == {
        "s": [1001, 1002, 1003, 1004]
    }
    with pytest.raises(pickleball.ExecutionError, match="--python-udfs deny"):
        inline.sql("select shift(fare) from fares").collect()


def test_a_udf_no_executor_registered_is_a_clear_error(strict_cluster: CliCluster) -> None:
    ctx = _by_name_context(strict_cluster.url)
    ctx.register_udf(udf(_client_shift, [pa.int64()], pa.int64(), "immutable", name="nudge"))
    with pytest.raises(pickleball.ExecutionError) as error:
        ctx.sql("select nudge(fare) from fares").collect()
    message = str(error.value)
    assert "'nudge' was sent by name" in message
    assert "--udf-module" in message
    assert "scalar shift" in message  # what the executor does have


def test_a_broken_udf_module_stops_the_executor_at_start(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    result = subprocess.run(
        [PICKLEBALL, "executor", "--scheduler-port=1", "--health-port=0", f"--udf-module={broken}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert str(broken) in result.stderr
    assert "ModuleNotFoundError" in result.stderr
    assert "not_a_module_anywhere" in result.stderr


def test_an_executor_alone_in_deny_mode_names_the_udf_and_the_remedies() -> None:
    # The scheduler accepts inline payloads here; the refusal comes from the executor, when
    # the task runs, and must still reach the client with its message.
    cluster = CliCluster(executors=1, executor_extra=("--python-udfs=deny",))
    try:
        ctx = pickleball.connect(cluster.url)
        ctx.register_udf(udf(_client_shift, [pa.int64()], pa.int64(), "immutable", name="shift"))
        ctx.from_pydict(FARES, name="fares")
        with pytest.raises(pickleball.ExecutionError) as error:
            ctx.sql("select shift(fare) from fares").collect()
        message = str(error.value)
        assert "'shift' arrived inline" in message
        assert "pickleball executor runs with --python-udfs deny" in message
        assert "--udf-module" in message
        assert ctx.sql("select sum(fare) as s from fares").to_pylist() == [{"s": 10}]
    finally:
        cluster.stop()


def test_row_wise_udfs_go_by_name_too(strict_cluster: CliCluster) -> None:
    ctx = _by_name_context(strict_cluster.url)
    ctx.register_udf(tidy)
    ctx.from_pydict({"w": [" a ", "Bc "]}, name="words")
    assert ctx.sql("select tidy(w) as t from words").to_pydict() == {"t": ["A", "BC"]}
