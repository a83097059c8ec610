"""The ``pickleball`` command line: flags, the demo, and a standalone cluster process."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from conftest import PICKLEBALL, standalone_process

import pickleball

pytestmark = pytest.mark.timeout(300)


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PICKLEBALL, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_help_lists_every_command() -> None:
    out = run("--help")
    assert out.returncode == 0
    for command in ("scheduler", "executor", "standalone", "demo"):
        assert command in out.stdout


def test_unknown_command_fails() -> None:
    out = run("frobnicate")
    assert out.returncode == 2
    assert "unknown command 'frobnicate'" in out.stderr


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        (
            "scheduler",
            [
                "--bind-host",
                "--bind-port",
                "--external-host",
                "--task-max-failures",
                "--stage-max-failures",
                "--executor-timeout-seconds",
            ],
        ),
        (
            "executor",
            [
                "--scheduler-host",
                "--scheduler-port",
                "--bind-host",
                "--external-host",
                "--port",
                "--grpc-port",
                "--vcores",
                "--work-dir",
                "--health-port",
            ],
        ),
    ],
)
def test_server_commands_take_ballistas_flags(command: str, flags: list[str]) -> None:
    out = run(command, "--help")
    assert out.returncode == 0, out.stderr
    for flag in flags:
        assert flag in out.stdout, flag
    assert "PICKLEBALL_" in out.stdout


def test_bad_flag_is_refused_with_a_usage_message() -> None:
    out = run("scheduler", "--bind-port", "not-a-port")
    assert out.returncode != 0
    assert "not-a-port" in out.stderr


def test_demo_runs_and_agrees_with_local_datafusion(tmp_path: Path) -> None:
    out = run("demo", "--rows", "60000", "--data-dir", str(tmp_path), timeout=240)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("(same result)") == 6, out.stdout
    assert "row-wise Python UDF" in out.stdout
    assert "DIFFERENT" not in out.stdout


def test_standalone_process_serves_clients_and_stops_on_sigint() -> None:
    with standalone_process("--executors", "2") as (process, url):
        ctx = pickleball.connect(url)
        ctx.from_pydict({"a": [1, 2, 3]}, name="t")
        assert ctx.sql("select sum(a) as s from t").to_pylist() == [{"s": 6}]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
