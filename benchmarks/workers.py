"""Engines of ``benchmarks/rowwise.py`` that run in processes of their own (pickleball
cluster configurations, PySpark with its JVM), stopped between their jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import weakref
from typing import Any


def _kill_worker(process: subprocess.Popen[str]) -> None:
    """Kill a worker's process group if it still runs (or is stopped)."""
    if process.poll() is None:
        if hasattr(signal, "SIGCONT"):
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGKILL)
        process.kill()
        process.wait()


class Worker:
    """An engine in a process group of its own (a pickleball cluster configuration: the
    sub-interpreter pool is sized by the first executor of a process; PySpark with its JVM),
    stopped (SIGSTOP) between its jobs, so that it takes no CPU from the other engines' jobs.
    Serves one JSON request per line on stdin, one JSON reply per line on stdout."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        """Start the worker and wait until its tables are registered."""
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        # Killed (resumed first) at exit if the benchmark fails, so no stopped process stays.
        weakref.finalize(self, _kill_worker, self.process)
        self._reply()
        self._pause(stop=True)

    def _pause(self, *, stop: bool) -> None:
        if hasattr(signal, "SIGSTOP"):
            os.killpg(self.process.pid, signal.SIGSTOP if stop else signal.SIGCONT)

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        msg = f"benchmark worker {self.process.args} exited with {self.process.wait()}"
        raise RuntimeError(msg)

    def request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Resume the worker, send ``request``, return its reply, stop the worker again."""
        assert self.process.stdin is not None
        self._pause(stop=False)
        time.sleep(0.2)  # let timers that came due while stopped fire before the job
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self._reply()
        self._pause(stop=True)
        return reply

    def close(self) -> int | None:
        """Stop the worker; the number of sub-interpreter threads it had (pickleball)."""
        pool = self.request({"pool": True})["pool"]
        assert self.process.stdin is not None
        self._pause(stop=False)
        self.process.stdin.close()
        self.process.wait()
        return pool
