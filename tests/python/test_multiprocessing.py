"""pickleball objects across process boundaries, with each multiprocessing start method:
expressions with ``pickleball.udf`` closures, DataFrames (both directions), contexts, strict
(by-name) expression payloads, and many processes submitting jobs to one cluster at once."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import datafusion
import pytest
from conftest import CliCluster, http_json
from datafusion import col
from datafusion.ipc import clear_sender_ctx, set_sender_ctx, set_worker_ctx

import pickleball

pytestmark = pytest.mark.timeout(180)

# Workers started with spawn/forkserver import this module; executors cannot: ship its
# functions by value, as a notebook's are.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

START_METHODS = ["fork", "forkserver", "spawn"]
DATA = {"x": list(range(50)), "name": [f" item {i} " for i in range(50)]}
RESULT_TIMEOUT = 90


def _offset_udf(offset: int) -> pickleball.RowUDF:
    @pickleball.udf(name="shifted")
    def shifted(x: int) -> int:
        return x * 3 + offset  # a closure over `offset`

    return shifted


@pickleball.udf
def tidy(name: str) -> str:
    return name.strip().upper()


def _evaluate_locally(expr: datafusion.Expr) -> list[Any]:
    local = datafusion.SessionContext()
    return local.from_pydict(DATA).select(expr.alias("r")).to_pydict()["r"]


def _run_udf_object(udf: pickleball.RowUDF) -> list[Any]:
    local = datafusion.SessionContext()
    local.register_udf(udf)
    local.from_pydict(DATA, name="data")
    return local.sql(f"select {udf.name}(x) as r from data").to_pydict()["r"]


def _collect(df: pickleball.DataFrame) -> dict[str, list[Any]]:
    return df.sort(col("x")).to_pydict()


def _build_in_worker(url: str, offset: int) -> pickleball.DataFrame:
    ctx = pickleball.connect(url)
    mine = _offset_udf(offset)
    ctx.register_udf(mine)
    return ctx.from_pydict(DATA, name="data").select(col("x"), mine(col("x")).alias("y"))


def _ten_jobs(url: str, worker: int) -> list[int]:
    ctx = pickleball.connect(url)
    ctx.register_udf(_offset_udf(worker))
    ctx.from_pydict(DATA, name="data")
    return [
        ctx.sql(f"select sum(shifted(x)) + {job} as s from data").to_pylist()[0]["s"]
        for job in range(10)
    ]


def _install_worker_ctx() -> None:
    worker = datafusion.SessionContext()
    worker.register_udf(tidy)
    set_worker_ctx(worker)


def _install_strict_worker_ctx() -> None:
    set_worker_ctx(datafusion.SessionContext().with_python_udf_inlining(enabled=False))


def _decode_or_error(blob: bytes) -> str:
    try:
        pickle.loads(blob)
    except Exception as e:  # the message is the result
        return str(e)
    return "decoded"


def _decode_in_worker(blob: bytes) -> list[Any]:
    expr = pickle.loads(blob)
    return _evaluate_locally(expr)


def _pool(method: str, processes: int = 2, **kwargs: Any) -> Any:
    return multiprocessing.get_context(method).Pool(processes, **kwargs)


@pytest.mark.parametrize("method", START_METHODS)
def test_expressions_with_udf_closures_evaluate_in_workers(method: str) -> None:
    exprs = [_offset_udf(k)(col("x")) for k in range(4)] + [tidy(col("name"))]
    expected = [_evaluate_locally(e) for e in exprs]
    with _pool(method) as pool:
        got = pool.map_async(_evaluate_locally, exprs).get(RESULT_TIMEOUT)
    assert got == expected


@pytest.mark.parametrize("method", START_METHODS)
def test_udf_objects_work_in_workers(method: str) -> None:
    udfs = [_offset_udf(k) for k in (1, 2)]
    with _pool(method) as pool:
        got = pool.map_async(_run_udf_object, udfs).get(RESULT_TIMEOUT)
    assert got == [[x * 3 + k for x in DATA["x"]] for k in (1, 2)]
    assert pickle.loads(pickle.dumps(tidy))(" a ") == "A"


@pytest.mark.parametrize("method", START_METHODS)
def test_workers_collect_a_driver_dataframe_on_the_cluster(
    method: str, cli_cluster: CliCluster
) -> None:
    ctx = pickleball.connect(cli_cluster.url)
    shifted = _offset_udf(5)
    ctx.register_udf(shifted)
    df = ctx.from_pydict(DATA, name="data").select(col("x"), shifted(col("x")).alias("y"))
    expected = _collect(df)
    assert expected["y"][:3] == [5, 8, 11]
    with _pool(method) as pool:
        got = pool.map_async(_collect, [df] * 4).get(RESULT_TIMEOUT)
    assert got == [expected] * 4


@pytest.mark.parametrize("method", START_METHODS)
def test_workers_build_dataframes_the_driver_runs(method: str, cli_cluster: CliCluster) -> None:
    with _pool(method) as pool:
        frames = pool.starmap_async(_build_in_worker, [(cli_cluster.url, k) for k in range(3)]).get(
            RESULT_TIMEOUT
        )
    for k, df in enumerate(frames):
        assert isinstance(df, pickleball.DataFrame)
        got = _collect(df)
        assert got["y"] == [x * 3 + k for x in DATA["x"]]


@pytest.mark.parametrize("method", START_METHODS)
def test_by_name_expressions_decode_in_workers_with_a_worker_context(method: str) -> None:
    sender = datafusion.SessionContext().with_python_udf_inlining(enabled=False)
    set_sender_ctx(sender)
    try:
        blob = pickle.dumps(tidy(col("name")))
    finally:
        clear_sender_ctx()
    with _pool(method, initializer=_install_worker_ctx) as pool:
        got = pool.map_async(_decode_in_worker, [blob]).get(RESULT_TIMEOUT)
    assert got == [[n.strip().upper() for n in DATA["name"]]]


@pytest.mark.parametrize("method", START_METHODS)
def test_a_strict_worker_refuses_inline_payloads(method: str) -> None:
    blob = pickle.dumps(tidy(col("name")))  # inline: the default
    with _pool(method, initializer=_install_strict_worker_ctx) as pool:
        (message,) = pool.map_async(_decode_or_error, [blob]).get(RESULT_TIMEOUT)
    assert "Refusing to deserialize" in message
    assert "tidy" in message


def test_a_context_pickles_as_its_cluster(cli_cluster: CliCluster) -> None:
    ctx = pickleball.connect(cli_cluster.url, **{"datafusion.execution.batch_size": 1024})
    strict = ctx.with_python_udf_inlining(enabled=False)
    copy = pickle.loads(pickle.dumps(strict))
    assert isinstance(copy, pickleball.SessionContext)
    assert copy.url == cli_cluster.url
    assert copy.python_udf_inlining is False
    assert copy.sql("select 41 + 1 as a").to_pylist() == [{"a": 42}]


def test_a_dataframe_from_another_python_minor_version_is_refused(
    cli_cluster: CliCluster,
) -> None:
    ctx = pickleball.connect(cli_cluster.url)
    buf = bytearray(ctx.from_pydict({"a": [1]}).to_bytes())
    buf[6] = (buf[6] + 1) % 256  # the minor version byte
    with pytest.raises(ValueError, match="not portable across Python minor versions") as error:
        pickleball.DataFrame.from_bytes(bytes(buf), ctx)
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}" in str(error.value)
    with pytest.raises(ValueError, match="not a pickleball DataFrame"):
        pickleball.DataFrame.from_bytes(b"garbage", ctx)


def test_four_processes_submit_ten_jobs_each_at_once(cli_cluster: CliCluster) -> None:
    def job_ids() -> set[str]:
        return {job["job_id"] for job in http_json(cli_cluster.port, "/api/jobs")}  # type: ignore[union-attr]

    before = job_ids()
    with _pool("spawn", processes=4) as pool:
        got = pool.starmap_async(_ten_jobs, [(cli_cluster.url, w) for w in range(4)]).get(
            RESULT_TIMEOUT * 2
        )
    total = sum(x * 3 for x in DATA["x"])
    assert got == [[total + 50 * w + job for job in range(10)] for w in range(4)]
    new = job_ids() - before
    assert len(new) == 40


PY312 = Path(os.environ.get("PICKLEBALL_VENV_PY312", "/nonexistent")) / "bin" / "python"


@pytest.mark.skipif(not PY312.exists(), reason="no Python 3.12 venv (scripts/setup.sh makes one)")
def test_a_dataframe_pickled_under_python_3_12_is_refused_cleanly(
    cli_cluster: CliCluster, tmp_path: Path
) -> None:
    out = tmp_path / "df312.pickle"
    script = Path(__file__).with_name("py312_pickle.py")
    package = Path(pickleball.__file__).parent
    subprocess.run(
        [str(PY312), str(script), str(package), cli_cluster.url, str(out)],
        check=True,
        timeout=120,
    )
    with pytest.raises(ValueError, match="not portable across Python minor versions") as error:
        pickle.loads(out.read_bytes())
    assert "serialized under Python 3.12" in str(error.value)
    assert f"runs Python 3.{sys.version_info.minor}" in str(error.value)
