"""Forking a process whose in-process executors ran row-wise UDFs on sub-interpreters: the
child lives, and the parent's next row-wise job starts new sub-interpreters."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import cloudpickle
import pytest

import pickleball

pytestmark = pytest.mark.timeout(120)

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pickleball.udf
def plus_one(x: int) -> int:
    return x + 1


def _child_work() -> int:
    import json

    return len(json.dumps({"alive": True}))


def test_fork_after_sub_interpreters_ran(standalone_ctx: pickleball.SessionContext) -> None:
    ctx = pickleball.connect(standalone_ctx.url)
    ctx.register_udf(plus_one)
    ctx.from_pydict({"x": [1, 2, 3]}, name="nums")
    query = "select sum(plus_one(x)) as s from nums"
    assert ctx.sql(query).to_pylist() == [{"s": 9}]
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _child_work() == 15 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"fork child died with signal {os.WTERMSIG(status)}"
    assert os.WEXITSTATUS(status) == 0
    # Python code between fork and exec (preexec_fn) runs too.
    assert subprocess.run(["true"], preexec_fn=lambda: None, check=False).returncode == 0
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]
    # The parent's sub-interpreters come back for the next job.
    assert ctx.sql(query).to_pylist() == [{"s": 9}]
