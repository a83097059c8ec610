"""Fixtures: a standalone cluster, a multi-process cluster started from the CLI, and data."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import datafusion
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import pickleball

PICKLEBALL = str(Path(sys.executable).with_name("pickleball"))


def free_port() -> int:
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bearer(token: str) -> str:
    """The ``Authorization`` header value that carries cluster token ``token``."""
    return f"Bearer pickleball-token/{hashlib.sha256(token.encode()).hexdigest()}"


def http_json(port: int, path: str, token: str | None = None) -> object:
    """GET a scheduler REST endpoint (presenting ``token``, if any) and decode its JSON."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", bearer(token))
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@contextlib.contextmanager
def standalone_process(
    *flags: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``pickleball standalone --bind-port 0 FLAGS`` as a process (``env`` added to ours):
    the process and the ``df://`` URL it prints; killed on exit."""
    process = subprocess.Popen(
        ["setpriv", "--pdeathsig", "KILL", PICKLEBALL, "standalone", "--bind-port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "df://" in line, line
        yield process, line.split()[-1]
    finally:
        process.kill()
        process.wait()


class CliCluster:
    """A scheduler and executors started with the ``pickleball`` CLI as OS processes."""

    def __init__(
        self,
        executors: int = 2,
        vcores: int = 2,
        log_dir: Path | None = None,
        extra: tuple[str, ...] = (),
        executor_extra: tuple[str, ...] = (),
        binaries: bool = False,
        token: str | None = None,
    ) -> None:
        """Start the processes (``extra`` flags for all, ``executor_extra`` for executors).

        With ``binaries``, run the stand-alone ``pickleball-scheduler`` and
        ``pickleball-executor`` binaries (CPython embedded) instead of the ``pickleball`` CLI.
        With ``token``, every process gets it in ``PICKLEBALL_TOKEN``.
        """
        self.binaries = binaries
        self.token = token
        self.flight_ports: list[int] = []
        self.port = free_port()
        self.log_dir = log_dir
        self.extra = extra
        self.executor_extra = executor_extra
        self.scheduler = self._spawn(
            "scheduler",
            "--bind-host=127.0.0.1",
            f"--bind-port={self.port}",
            "--external-host=127.0.0.1",
            "--executor-timeout-seconds=6",
            "--expire-dead-executor-interval-seconds=1",
            *extra,
        )
        self.executors = [self._start_executor(vcores) for _ in range(executors)]
        self.wait_for_executors(executors)

    @property
    def url(self) -> str:
        """``df://127.0.0.1:<port>``."""
        return f"df://127.0.0.1:{self.port}"

    def _spawn(self, command: str, *args: str, token: str | None = None) -> subprocess.Popen[bytes]:
        token = token if token is not None else self.token
        log = subprocess.DEVNULL
        if self.log_dir is not None:
            log = open(self.log_dir / f"{command}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
        return subprocess.Popen(
            # Children die with the test process even if it is killed, so no run leaks
            # processes. setpriv, not preexec_fn: no Python runs in the forked child.
            ["setpriv", "--pdeathsig", "KILL", *self._command(command), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={
                **os.environ,
                "RUST_LOG": os.environ.get("PICKLEBALL_TEST_LOG", "warn"),
                # The embedded Python of the binaries finds the venv's packages through it.
                "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
                **({"PICKLEBALL_TOKEN": token} if token is not None else {}),
            },
        )

    def _command(self, command: str) -> list[str]:
        if not self.binaries:
            return [PICKLEBALL, command]
        return [str(Path(os.environ["PICKLEBALL_BIN_DIR"]) / f"pickleball-{command}")]

    def _start_executor(self, vcores: int, token: str | None = None) -> subprocess.Popen[bytes]:
        self.flight_ports.append(free_port())
        return self._spawn(
            "executor",
            "--scheduler-host=127.0.0.1",
            f"--scheduler-port={self.port}",
            "--bind-host=127.0.0.1",
            "--external-host=127.0.0.1",
            f"--port={self.flight_ports[-1]}",
            f"--grpc-port={free_port()}",
            "--health-port=0",
            f"--vcores={vcores}",
            "--heartbeat-interval-seconds=1",
            *self.extra,
            *self.executor_extra,
            token=token,
        )

    def registered_executors(self) -> int:
        """Executors the scheduler lists."""
        try:
            return len(http_json(self.port, "/api/executors", self.token))  # type: ignore[arg-type]
        except OSError:
            return 0

    def wait_for_executors(self, n: int, timeout: float = 60) -> None:
        """Block until ``n`` executors are registered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.registered_executors() >= n:
                return
            if self.scheduler.poll() is not None:
                raise RuntimeError(f"scheduler exited with {self.scheduler.returncode}")
            time.sleep(0.1)
        raise TimeoutError(f"{n} executors did not register within {timeout} s")

    def kill_executor(self, index: int) -> None:
        """SIGKILL executor ``index``, as a crash would."""
        process = self.executors[index]
        process.kill()
        process.wait()

    def stop(self) -> None:
        """Kill every process of the cluster."""
        for process in [*self.executors, self.scheduler]:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()


@pytest.fixture(scope="session")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliCluster]:
    """One scheduler and two executors, started with the CLI, shared by the session."""
    cluster = CliCluster(log_dir=tmp_path_factory.mktemp("cluster-logs"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def standalone_ctx() -> Iterator[pickleball.SessionContext]:
    """An in-process cluster with two executors."""
    ctx = pickleball.standalone(executors=2, vcores=2)
    yield ctx
    ctx.close()


@pytest.fixture(params=["standalone", "cli-cluster"])
def cluster_url(request: pytest.FixtureRequest) -> str:
    """The URL of each kind of cluster in turn."""
    if request.param == "standalone":
        return request.getfixturevalue("standalone_ctx").url
    return request.getfixturevalue("cli_cluster").url


@pytest.fixture
def ctx(cluster_url: str) -> pickleball.SessionContext:
    """A fresh client context on each kind of cluster in turn."""
    return pickleball.connect(cluster_url)


@pytest.fixture
def local() -> datafusion.SessionContext:
    """A plain local datafusion context: the reference for every result."""
    return datafusion.SessionContext()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small sales data as Parquet (several files), CSV and JSON, plus a customers table."""
    root = tmp_path_factory.mktemp("data")
    n = 5000
    sales = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "customer_id": pa.array([i * 7 % 97 for i in range(n)], pa.int64()),
            "product": pa.array([f"p{i * 13 % 11}" for i in range(n)]),
            "amount": pa.array([round((i * 37 % 1000) / 10, 1) for i in range(n)], pa.float64()),
            "quantity": pa.array([None if i % 17 == 0 else i % 9 for i in range(n)], pa.int32()),
            "day": pa.array([i % 28 + 1 for i in range(n)], pa.int32()),
        }
    )
    customers = pa.table(
        {
            "customer_id": pa.array(range(0, 120), pa.int64()),
            "name": pa.array([f"customer {i}" for i in range(120)]),
            "region": pa.array(
                [["north", "south", "east", "west", None][i % 5] for i in range(120)]
            ),
        }
    )
    (root / "sales_parquet").mkdir()
    for part in range(4):
        pq.write_table(
            sales.slice(part * n // 4, n // 4), root / "sales_parquet" / f"{part}.parquet"
        )
    pacsv.write_csv(sales, root / "sales.csv")
    with open(root / "sales.json", "w") as out:
        for row in sales.to_pylist():
            out.write(json.dumps(row) + "\n")
    pq.write_table(customers, root / "customers.parquet")
    return {
        "parquet": root / "sales_parquet",
        "csv": root / "sales.csv",
        "json": root / "sales.json",
        "customers": root / "customers.parquet",
    }
