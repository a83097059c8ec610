"""A cluster with a shared token: real scheduler and executor processes started with
``PICKLEBALL_TOKEN``, clients with and without it, and raw requests that must be refused."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from conftest import PICKLEBALL, CliCluster, bearer, free_port, http_json, standalone_process
from datafusion import col
from datafusion import functions as f
from test_cancellation import _assert_stopped, _collect_with_ctrl_c, _query

import pickleball

TOKEN = "correct horse battery staple"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliCluster]:
    """Scheduler and two executors sharing TOKEN (pull-staged, the default with a token)."""
    cluster = CliCluster(log_dir=tmp_path_factory.mktemp("token-logs"), token=TOKEN)
    yield cluster
    cluster.stop()


def _assert_jobs_run(ctx: pickleball.SessionContext) -> None:
    """A row-wise UDF in a repartitioned aggregate, whose shuffle is read over Flight from
    every executor, and a DataFrame aggregate: the results are right."""

    def bucket(x: int) -> int:
        return x % 7

    ctx.register_udf(pickleball.udf(bucket))
    ctx.register_record_batches(
        "t", [[pa.record_batch({"x": list(range(i * 1000, (i + 1) * 1000))})] for i in range(4)]
    )
    rows = ctx.sql(
        "select bucket(x) as b, count(*) as n, sum(x) as s from t group by bucket(x) order by b"
    ).to_pylist()
    expected = [
        {"b": b, "n": len(xs), "s": sum(xs)}
        for b in range(7)
        for xs in [[x for x in range(4000) if x % 7 == b]]
    ]
    assert rows == expected
    # The DataFrame API and result fetches too.
    df = ctx.table("t").aggregate([], [f.max(col("x")).alias("m")])
    assert df.to_pylist() == [{"m": 3999}]


def test_jobs_run_with_the_token_across_executors(guarded: CliCluster) -> None:
    _assert_jobs_run(pickleball.connect(guarded.url, token=TOKEN))


def test_a_standalone_process_can_require_a_token() -> None:
    with standalone_process("--executors", "2", env={"PICKLEBALL_TOKEN": TOKEN}) as (_, url):
        with pytest.raises(PermissionError, match="requires a token"):
            pickleball.connect(url)
        _assert_jobs_run(pickleball.connect(url, token=TOKEN))


def test_the_token_can_come_from_the_environment(
    guarded: CliCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PICKLEBALL_TOKEN", TOKEN)
    ctx = pickleball.connect(guarded.url)
    assert ctx.sql("select 40 + 2 as v").to_pylist() == [{"v": 42}]


def test_clients_without_the_token_are_refused_at_connect(guarded: CliCluster) -> None:
    with pytest.raises(PermissionError, match=r"requires a token.*PICKLEBALL_TOKEN"):
        pickleball.connect(guarded.url)
    with pytest.raises(PermissionError, match="token is not the cluster's"):
        pickleball.connect(guarded.url, token="wrong")
    with pytest.raises(ValueError, match="token is empty"):
        pickleball.connect(guarded.url, token=" ")


def test_a_token_for_an_open_cluster_warns(cli_cluster: CliCluster) -> None:
    with pytest.warns(UserWarning, match="requires no token, so the token was not sent"):
        ctx = pickleball.connect(cli_cluster.url, token=TOKEN)
    assert ctx.sql("select 1 as one").to_pylist() == [{"one": 1}]


def test_an_empty_token_in_the_environment_is_refused(
    cli_cluster: CliCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PICKLEBALL_TOKEN", "")
    with pytest.raises(ValueError, match="token is empty"):
        pickleball.connect(cli_cluster.url)


class _OpenImpostor:
    """A server that admits anyone: answers every HTTP request 200 and records every byte a
    client sends it (gRPC connections get nothing back)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received = bytearray()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(1)
                try:
                    data = conn.recv(65536)
                    self.received += data
                    if data.startswith(b"GET "):
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                    else:
                        while chunk := conn.recv(65536):
                            self.received += chunk
                except OSError:
                    pass


def test_a_scheduler_that_admits_anyone_never_sees_the_token() -> None:
    impostor = _OpenImpostor()
    try:
        with pytest.warns(UserWarning, match="requires no token"):
            ctx = pickleball.connect(f"df://127.0.0.1:{impostor.port}", token=TOKEN)
        with pytest.raises(Exception):  # noqa: B017 - any failure: it is no scheduler
            ctx.sql("select 1").collect()
    finally:
        impostor.server.close()
    assert b"GET /api/version" in impostor.received
    digest = bearer(TOKEN).removeprefix("Bearer pickleball-token/").encode()
    assert digest not in impostor.received


def _status(port: int, path: str, authorization: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_the_rest_api_requires_the_token_but_probes_do_not(guarded: CliCluster) -> None:
    code, body = _status(guarded.port, "/api/jobs")
    assert code == 401
    assert "requires its token" in body
    assert _status(guarded.port, "/api/jobs", bearer("wrong"))[0] == 401
    assert _status(guarded.port, "/api/jobs", bearer(TOKEN))[0] == 200
    assert len(http_json(guarded.port, "/api/executors", TOKEN)) == 2  # type: ignore[arg-type]
    assert _status(guarded.port, "/healthz") == (200, "ok")
    assert _status(guarded.port, "/readyz")[0] == 200


def test_grpc_calls_without_the_token_are_refused(guarded: CliCluster) -> None:
    # The executors' Flight services (shuffle and result data) and the scheduler's gRPC port.
    for port in [*guarded.flight_ports, guarded.port]:
        client = flight.connect(f"grpc://127.0.0.1:{port}")
        with pytest.raises(flight.FlightUnauthenticatedError, match="requires its token"):
            client.do_get(flight.Ticket(b"no such partition")).read_all()
        client.close()
    # With the token, an executor's Flight service answers (here: the ticket is invalid).
    client = flight.connect(f"grpc://127.0.0.1:{guarded.flight_ports[0]}")
    options = flight.FlightCallOptions(headers=[(b"authorization", bearer(TOKEN).encode())])
    with pytest.raises(flight.FlightError) as raised:
        client.do_get(flight.Ticket(b"no such partition"), options).read_all()
    assert not isinstance(raised.value, flight.FlightUnauthenticatedError)
    client.close()


def test_ctrl_c_cancels_a_job_on_a_token_cluster(guarded: CliCluster, tmp_path: Path) -> None:
    # The client cancels through the REST API, and the executors' job watcher learns of it
    # over gRPC: both with the token, or the UDF would run on.
    ctx = pickleball.connect(guarded.url, token=TOKEN)
    beat = tmp_path / "heartbeat"
    df = _query(
        ctx, pa.table({"x": pa.array(range(2_000), pa.int64())}), "rows-subinterpreter", str(beat)
    )

    def udf_running() -> None:
        deadline = time.monotonic() + 30
        while not (beat.exists() and beat.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.05)

    _collect_with_ctrl_c(df, udf_running)
    _assert_stopped(beat)
    jobs = http_json(guarded.port, "/api/jobs", TOKEN)
    assert "Running" not in [job["status"] for job in jobs]  # type: ignore[union-attr,index]


def _failed_executor_log(cluster: CliCluster, token: str | None, tmp_path: Path) -> str:
    """Start an executor of ``cluster`` with ``token``; it must exit with an error: its log."""
    kept, cluster.log_dir = cluster.log_dir, tmp_path
    try:
        executor = cluster._start_executor(1, token=token)
    finally:
        cluster.log_dir = kept
    assert executor.wait(timeout=60) != 0
    return next(tmp_path.glob("executor-*.log")).read_text()


def test_an_executor_with_a_wrong_token_exits_with_the_reason(
    guarded: CliCluster, tmp_path: Path
) -> None:
    log = _failed_executor_log(guarded, "wrong", tmp_path)
    assert "refused this executor" in log, log
    assert "requires its token" in log, log
    # The cluster still has its two executors.
    time.sleep(0.5)
    assert guarded.registered_executors() == 2


def test_an_executor_with_a_token_the_scheduler_lacks_exits_with_the_reason(
    tmp_path: Path,
) -> None:
    open_cluster = CliCluster(executors=0)
    try:
        log = _failed_executor_log(open_cluster, TOKEN, tmp_path)
    finally:
        open_cluster.stop()
    assert "the scheduler at" in log, log
    assert "requires none" in log, log


def test_push_staged_scheduling_with_a_token_is_refused() -> None:
    command = [PICKLEBALL, "scheduler", "--bind-host=127.0.0.1", f"--bind-port={free_port()}"]
    done = subprocess.run(
        [*command, "--scheduling-policy=push-staged"],
        env={**os.environ, "PICKLEBALL_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "must use --scheduling-policy pull-staged" in done.stdout + done.stderr
