"""Bad input gets a clear error and loses nothing; a dead executor does not fail the job."""

from __future__ import annotations

import time
from pathlib import Path

import datafusion
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from compare import assert_same_result
from conftest import CliCluster, free_port, http_json

import pickleball

pytestmark = pytest.mark.timeout(180)


def test_unreachable_scheduler_fails_fast_naming_the_url() -> None:
    url = f"df://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(ConnectionError) as error:
        pickleball.connect(url)
    assert time.monotonic() - start < 10
    assert url in str(error.value)
    assert "pickleball scheduler" in str(error.value)


def test_unresolvable_host_fails_fast() -> None:
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=r"no-such-host\.invalid"):
        pickleball.connect("df://no-such-host.invalid:50050", connect_timeout=3)
    assert time.monotonic() - start < 10


def test_sql_errors_keep_datafusion_text(ctx: pickleball.SessionContext) -> None:
    local = datafusion.SessionContext()
    for bad in ["selec 1", "select nope from (select 1 as a)", "select * from missing_table"]:
        with pytest.raises(Exception) as ours:
            ctx.sql(bad).collect()
        with pytest.raises(Exception) as theirs:
            local.sql(bad).collect()
        assert str(ours.value) == str(theirs.value)


def test_missing_file_names_the_path(ctx: pickleball.SessionContext, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "trips.parquet"
    with pytest.raises(Exception, match="nowhere"):
        ctx.register_parquet("trips", str(missing))


def test_a_corrupt_file_fails_on_the_cluster_naming_it(
    ctx: pickleball.SessionContext, tmp_path: Path
) -> None:
    path = tmp_path / "damaged.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), path)
    df = ctx.read_parquet(str(path))
    path.write_bytes(b"this is not a parquet file at all")
    with pytest.raises(pickleball.ExecutionError) as error:
        df.collect()
    assert "Corrupt footer" in str(error.value)
    assert str(path) in str(error.value)
    # The cluster serves the next job.
    assert ctx.sql("select 41 + 1 as answer").to_pylist() == [{"answer": 42}]


@pytest.mark.parametrize("table", ["range(10)", "generate_series(1, 3)"])
def test_table_functions_are_refused_with_the_remedy(
    ctx: pickleball.SessionContext, table: str
) -> None:
    with pytest.raises(NotImplementedError, match=r"table function.*from_pydict"):
        ctx.sql(f"select * from {table}").collect()
    assert ctx.sql("select 1 as one").to_pylist() == [{"one": 1}]


def test_a_failing_job_leaves_the_cluster_serving(ctx: pickleball.SessionContext) -> None:
    ctx.from_pydict({"s": ["1", "2", "three"]}, name="strings")
    with pytest.raises(pickleball.ExecutionError, match="three"):
        ctx.sql("select cast(s as int) as i from strings").collect()
    assert ctx.sql("select count(*) as n from strings").to_pylist() == [{"n": 3}]


def test_in_memory_table_over_the_limit_names_it_and_the_remedy() -> None:
    # 1 KiB limit, set for this context only, so the test needs no large data.
    with pickleball.standalone(**{"pickleball.max_inline_table_bytes": "1024"}) as ctx:
        ctx.from_pydict({"x": list(range(10_000))}, name="big_numbers")
        with pytest.raises(Exception) as error:
            ctx.sql("select sum(x) from big_numbers").collect()
    message = str(error.value)
    assert "big_numbers" in message
    assert "Parquet" in message


def _write_big_table(path: Path, rows: int, files: int) -> None:
    path.mkdir()
    per_file = rows // files
    for part in range(files):
        ids = pa.array(range(part * per_file, (part + 1) * per_file), pa.int64())
        table = pa.table({"v": ids, "k": pc.remainder(ids, 97), "x": pc.multiply(ids, 1.5)})
        pq.write_table(table, path / f"{part}.parquet")


def test_job_completes_when_an_executor_is_killed_mid_job(tmp_path: Path) -> None:
    data = tmp_path / "big"
    _write_big_table(data, rows=4_000_000, files=8)
    query = (
        "select a.k, count(*) as n, sum(a.x + b.x) as sx "
        "from t a join t b on a.v = b.v group by a.k"
    )
    local = datafusion.SessionContext()
    local.register_parquet("t", str(data))
    expected = local.sql(query).to_arrow_table()

    cluster = CliCluster(executors=2, vcores=2)
    try:
        ctx = pickleball.connect(cluster.url)
        ctx.register_parquet("t", str(data))
        stream = iter(ctx.sql(query).execute_stream())  # submitted; runs in the background
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = http_json(cluster.port, "/api/jobs")
            if any(job["status"] == "Running" for job in jobs):  # type: ignore[union-attr,index]
                break
            time.sleep(0.01)
        else:
            pytest.fail("the job never started running")
        cluster.kill_executor(0)
        got = pa.Table.from_batches([b.to_pyarrow() for b in stream])
        assert_same_result(got, expected)
    finally:
        cluster.stop()
