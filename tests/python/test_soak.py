"""A thousand consecutive jobs with a row-wise UDF on one executor: no growth in threads or
memory (sub-interpreters are created once, jobs reuse them)."""

from __future__ import annotations

import collections
import contextlib
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from conftest import CliCluster

import pickleball

pytestmark = pytest.mark.timeout(300)

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pickleball.udf
def mix(x: int) -> int:
    return (x * 31 + 7) % 1000003


def _threads_and_rss(pid: int) -> tuple[int, int]:
    threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return threads, int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _thread_names(pid: int) -> dict[str, int]:
    """The process's threads counted by name, for the failure message."""
    names: collections.Counter[str] = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # the thread ended while we listed them
            names[(task / "comm").read_text().strip()] += 1
    return dict(names)


def _threads_once_settled(pid: int, at_most: int) -> int:
    """The executor's thread count, after waiting up to 15 s for it to drop to `at_most`.

    Shuffle files are written and served on tokio's blocking pool, whose threads are made on
    demand and end after 10 s idle; a busy moment can leave one more than usual. A leak does
    not go away by waiting.
    """
    deadline = time.monotonic() + 15
    while True:
        threads, _ = _threads_and_rss(pid)
        if threads <= at_most or time.monotonic() > deadline:
            return threads
        time.sleep(0.5)


def test_a_thousand_jobs_keep_threads_and_memory_flat() -> None:
    cluster = CliCluster(executors=1, vcores=2)
    try:
        ctx = pickleball.connect(cluster.url)
        ctx.register_udf(mix)
        ctx.from_pydict({"x": list(range(2000))}, name="nums")
        query = "select sum(mix(x)) as s from nums"
        expected = [{"s": sum((x * 31 + 7) % 1000003 for x in range(2000))}]
        pid = cluster.executors[0].pid
        for _ in range(100):  # warm-up: interpreters, caches, allocator pools
            assert ctx.sql(query).to_pylist() == expected
        threads_before, rss_before = _threads_and_rss(pid)
        for _ in range(900):
            assert ctx.sql(query).to_pylist() == expected
        _, rss_after = _threads_and_rss(pid)
        threads_after = _threads_once_settled(pid, at_most=threads_before)
        assert threads_after <= threads_before, _thread_names(pid)
        growth = rss_after - rss_before
        print(f"threads {threads_before}->{threads_after}, RSS growth {growth / 2**20:.1f} MiB")
        assert growth < 32 * 1024 * 1024, f"executor RSS grew by {growth / 2**20:.1f} MiB"
    finally:
        cluster.stop()
