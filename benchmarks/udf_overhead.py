"""Overhead of running a vectorized Python UDF job on a pickleball standalone cluster versus a
plain local datafusion context, measured side by side in one run on the same data.

Usage: .venv/bin/python benchmarks/udf_overhead.py [--rows 10000000] [--repeat 5]
Writes benchmarks/results/udf_overhead.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import datafusion
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datafusion import udf

import pickleball

RESULTS = Path(__file__).parent / "results" / "udf_overhead.md"
QUERY = "select x % 16 as bucket, sum(score(x)) as s from t group by x % 16"
# The same job with the UDF's arithmetic in SQL: how fast the cluster's build of DataFusion is
# compared with the PyPI wheel's, with no Python involved.
CONTROL = "select x % 16 as bucket, sum((x + 7) * 31) as s from t group by x % 16"


def score(x: pa.Array) -> pa.Array:
    """The vectorized UDF: integer arithmetic with pyarrow compute."""
    return pc.multiply(pc.add(x, 7), 31)


def make_data(directory: Path, rows: int, files: int = 8) -> Path:
    target = directory / f"udf-bench-{rows}"
    if (target / "_COMPLETE").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    per_file = rows // files
    for part in range(files):
        x = pa.array(range(part * per_file, (part + 1) * per_file), pa.int64())
        pq.write_table(pa.table({"x": x}), target / f"{part}.parquet")
    (target / "_COMPLETE").touch()
    return target


def timed(job: Callable[[], object], repeat: int) -> tuple[float, object]:
    job()  # warm-up: file metadata caches, UDF unpickling on executors
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = job()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data-dir", default=str(Path.home() / ".cache" / "pickleball" / "bench"))
    args = parser.parse_args()
    data = make_data(Path(args.data_dir), args.rows)
    score_udf = udf(score, [pa.int64()], pa.int64(), "immutable", name="score")

    local = datafusion.SessionContext()
    cluster = pickleball.standalone()
    for ctx in (local, cluster):
        ctx.register_parquet("t", str(data))
        ctx.register_udf(score_udf)

    def run(ctx: datafusion.SessionContext, query: str) -> list[dict]:
        return sorted(ctx.sql(query).to_pylist(), key=lambda r: r["bucket"])

    seconds = {}
    for name, query in (("udf", QUERY), ("control", CONTROL)):
        local_s, expected = timed(lambda q=query: run(local, q), args.repeat)
        cluster_s, got = timed(lambda q=query: run(cluster, q), args.repeat)
        assert got == expected, f"cluster and local results differ for {query}"
        seconds[name] = (local_s, cluster_s)
    cluster.close()
    ratio = seconds["udf"][1] / seconds["udf"][0]
    control = seconds["control"][1] / seconds["control"][0]
    rows = "".join(
        f"| {label} | {seconds[key][0]:.3f} | {seconds[key][1]:.3f} | "
        f"{seconds[key][1] / seconds[key][0]:.2f}x |\n"
        for key, label in (("udf", "with the Python UDF"), ("control", "control: same math in SQL"))
    )
    table = (
        f"# Vectorized UDF job: pickleball standalone vs local datafusion\n\n"
        f"Query: `{QUERY}` over {args.rows:,} rows of Parquet ({platform.machine()}, "
        f"{os.cpu_count()} cores); median of {args.repeat} runs after a warm-up. The control "
        f"runs `{CONTROL}`: no Python at all.\n\n"
        f"| job | local datafusion-python s | pickleball standalone s | ratio |\n"
        f"|---|---|---|---|\n{rows}\n"
        f"Overhead ratio with the UDF (pickleball / local): **{ratio:.2f}x** (goal <= 1.2x).\n"
        f"Of it, shipping and running the UDF: **{ratio / control:.2f}x** (UDF ratio / control "
        f"ratio); the rest is the control's gap, which is how our DataFusion build compares with "
        f"the PyPI wheel's.\n"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
