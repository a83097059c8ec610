"""Cancelling a job stops its Python UDFs, even one that never returns (issue 4).

A job is cancelled through the scheduler's REST API (``PATCH /api/job/{id}``, Ballista's own
way) or by Ctrl-C in the client. The UDF loops forever on every lane: row-wise on the own-GIL
sub-interpreters and in the main interpreter, a stock datafusion-python (pyarrow) scalar UDF,
an aggregate UDF and a window UDF. The client must see the job fail within seconds, the UDF
must stop (its heartbeat file goes quiet), and the same executors must then run the next jobs,
on every sub-interpreter.
"""

from __future__ import annotations

import _thread
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import http_json
from datafusion import col, udf

import pickleball

pytestmark = pytest.mark.timeout(120)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _jobs(port: int) -> dict[str, str]:
    """Job id -> status of every job the scheduler knows."""
    return {job["job_id"]: job["status"] for job in http_json(port, "/api/jobs")}  # type: ignore[union-attr,index]


def _cancel(port: int, job_id: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/job/{job_id}", method="PATCH")
    with urllib.request.urlopen(request, timeout=5) as response:
        json.load(response)
        return response.status


def _looping_forever(beat: str) -> Callable[..., None]:
    """A function that never returns, and while it runs appends a byte to the file ``beat``
    now and then: a heartbeat that shows, across processes, whether it still runs. A closure
    made here, so cloudpickle sends it by value with the UDFs that call it."""

    def loop(*_: object) -> None:
        n = 0
        while True:
            n += 1
            if n % 100_000 == 0:
                with open(beat, "a") as f:
                    f.write(".")

    return loop


def _make_udf(kind: str, beat: str) -> Callable[..., Any]:
    """A scalar UDF named ``forever`` that never returns (with a heartbeat)."""
    loop = _looping_forever(beat)

    def forever_rows(x: int) -> int:
        loop()
        return x

    def forever_arrays(x: pa.Array) -> pa.Array:
        loop()
        return x

    if kind == "stock-pyarrow":
        return udf(forever_arrays, [pa.int64()], pa.int64(), "volatile", name="forever")
    lane = "main" if kind == "rows-main" else "subinterpreter"
    return pickleball.udf(
        forever_rows, input_types=[pa.int64()], return_type=pa.int64(), name="forever", lane=lane
    )


def _make_udaf(beat: str) -> Callable[..., Any]:
    """An aggregate UDF named ``forever_sum`` whose ``update`` never returns (with a
    heartbeat)."""
    from datafusion import Accumulator, udaf

    loop = _looping_forever(beat)

    class ForeverSum(Accumulator):
        def update(self, values: pa.Array) -> None:
            loop()

        def merge(self, states: list[pa.Array]) -> None:
            pass

        def state(self) -> list[pa.Scalar]:
            return [pa.scalar(0)]

        def evaluate(self) -> pa.Scalar:
            return pa.scalar(0)

    return udaf(ForeverSum, pa.int64(), pa.int64(), [pa.int64()], "volatile", name="forever_sum")


def _make_udwf(beat: str) -> Callable[..., Any]:
    """A window UDF named ``forever_window`` whose ``evaluate_all`` never returns (with a
    heartbeat)."""
    from datafusion import udwf
    from datafusion.user_defined import WindowEvaluator

    loop = _looping_forever(beat)

    class ForeverWindow(WindowEvaluator):
        def evaluate_all(self, values: list[pa.Array], num_rows: int) -> pa.Array:
            loop()
            return values[0]

    return udwf(ForeverWindow, [pa.int64()], pa.int64(), "volatile", name="forever_window")


def _query(ctx: pickleball.SessionContext, table: pa.Table, kind: str, beat: str) -> Any:
    if kind == "aggregate":
        return ctx.from_arrow(table).aggregate([], [_make_udaf(beat)(col("x")).alias("s")])
    if kind == "window":
        return ctx.from_arrow(table).select(_make_udwf(beat)(col("x")).alias("w"))
    return ctx.from_arrow(table).select(_make_udf(kind, beat)(col("x")).alias("y"))


@pytest.mark.parametrize(
    "kind", ["rows-subinterpreter", "rows-main", "stock-pyarrow", "aggregate", "window"]
)
def test_cancelling_a_job_interrupts_a_udf_that_never_returns(
    cluster_url: str, kind: str, tmp_path: Path
) -> None:
    port = _port(cluster_url)
    ctx = pickleball.connect(cluster_url)
    before = set(_jobs(port))
    # One task of 2,000 rows; row-wise, its rows are split across both sub-interpreters.
    table = pa.table({"x": pa.array(range(2_000), pa.int64())})
    beat = tmp_path / "heartbeat"
    df = _query(ctx, table, kind, str(beat))

    outcome: dict[str, BaseException | None] = {}

    def collect() -> None:
        try:
            df.collect()
            outcome["error"] = None
        except BaseException as e:
            outcome["error"] = e

    runner = threading.Thread(target=collect, daemon=True)
    runner.start()
    job_id = _wait_for_new_running_job(port, before)
    time.sleep(0.5)  # let the UDF get stuck in its loop

    assert _cancel(port, job_id) == 200
    cancelled_at = time.monotonic()
    runner.join(timeout=30)
    assert not runner.is_alive(), "collect() still waits 30 s after the job was cancelled"
    assert time.monotonic() - cancelled_at < 15
    assert isinstance(outcome["error"], Exception), outcome
    assert "cancel" in str(outcome["error"]).lower(), outcome["error"]

    _assert_executors_recovered(ctx, table)
    assert _final_status(port, job_id) == "Failed"
    _assert_stopped(beat)


def _assert_stopped(beat: Path) -> None:
    """The UDF ran (its heartbeat file grew), and stops within 10 s of the cancellation: its
    heartbeat (a byte every few milliseconds while it runs) stays still for a whole second.
    """
    deadline = time.monotonic() + 10
    size = beat.stat().st_size
    assert size > 0
    while True:
        time.sleep(1.0)
        previous, size = size, beat.stat().st_size
        if size == previous:
            return
        assert time.monotonic() < deadline, "the cancelled UDF still runs"


def test_ctrl_c_in_the_client_cancels_the_job(cluster_url: str, tmp_path: Path) -> None:
    port = _port(cluster_url)
    ctx = pickleball.connect(cluster_url)
    before = set(_jobs(port))
    table = pa.table({"x": pa.array(range(2_000), pa.int64())})
    beat = tmp_path / "heartbeat"
    df = _query(ctx, table, "rows-subinterpreter", str(beat))

    seen: dict[str, str] = {}

    def job_running() -> None:
        seen["job"] = _wait_for_new_running_job(port, before)
        time.sleep(0.5)

    _collect_with_ctrl_c(df, job_running)
    assert _final_status(port, seen["job"]) == "Failed"
    assert [job_id for job_id in _jobs(port) if job_id not in before] == [seen["job"]]
    _assert_executors_recovered(ctx, table)
    _assert_stopped(beat)


def _collect_with_ctrl_c(df: Any, wait_until_running: Callable[[], None]) -> None:
    """``df.collect()``, with Ctrl-C pressed once ``wait_until_running`` returns: what Ctrl-C
    does, SIGINT handled by the main thread, which waits in collect(). It must raise
    KeyboardInterrupt."""

    def press_ctrl_c() -> None:
        wait_until_running()
        _thread.interrupt_main()

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        df.collect()
    presser.join(timeout=5)


def _final_status(port: int, job_id: str) -> str | None:
    """The job's status once it has ended (``None``: not listed within 10 s).

    Right after a cancellation the scheduler may briefly list the job nowhere, until it has
    stored the job's final state.
    """
    deadline = time.monotonic() + 10
    while True:
        status = _jobs(port).get(job_id)
        if status not in (None, "Queued", "Running") or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def _wait_for_new_running_job(port: int, before: set[str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        running = [j for j, s in _jobs(port).items() if j not in before and s == "Running"]
        if running:
            return running[0]
        time.sleep(0.05)
    raise AssertionError("the job never started running")


def _assert_executors_recovered(ctx: pickleball.SessionContext, table: pa.Table) -> None:
    """The next jobs run, row-wise ones on every sub-interpreter."""

    @pickleball.udf
    def plus_one(x: int) -> int:
        return x + 1

    for _ in range(3):
        result = ctx.from_arrow(table).repartition(4).select(plus_one(col("x")).alias("y"))
        assert sorted(result.to_arrow_table().column("y").to_pylist()) == list(range(1, 2_001))
