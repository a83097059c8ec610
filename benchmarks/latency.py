"""Fixed cost of a job: a trivial query and a two-stage GROUP BY on a tiny table, on a
pickleball standalone cluster and on a local datafusion context, side by side in one run.

Usage: .venv/bin/python benchmarks/latency.py [--repeat 30]
Writes benchmarks/results/latency.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import datafusion

import pickleball

RESULTS = Path(__file__).parent / "results" / "latency.md"
QUERIES = {
    "trivial (`select 1`)": "select 1 as one",
    "GROUP BY ... ORDER BY, 25 rows (three stages)": (
        "select b, sum(a) as s from t group by b order by b"
    ),
}


def median_ms(ctx: datafusion.SessionContext, query: str, repeat: int) -> float:
    """Median wall time of ``repeat`` collects, after one warm-up, in milliseconds."""
    ctx.sql(query).collect()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        ctx.sql(query).collect()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    """Measure and write the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    data = {"a": list(range(25)), "b": [i % 3 for i in range(25)]}
    local = datafusion.SessionContext()
    cluster = pickleball.standalone()
    rows = []
    try:
        for ctx in (local, cluster):
            ctx.from_pydict(data, name="t")
        for label, query in QUERIES.items():
            assert cluster.sql(query).to_pylist() == local.sql(query).to_pylist()
            local_ms = median_ms(local, query, args.repeat)
            cluster_ms = median_ms(cluster, query, args.repeat)
            rows.append(f"| {label} | {local_ms:.1f} | {cluster_ms:.1f} |")
    finally:
        cluster.close()
    table = (
        "# Fixed cost of a job\n\n"
        f"Median of {args.repeat} collects after a warm-up, {os.cpu_count()} cores, one run.\n\n"
        "| job | local datafusion-python ms | pickleball standalone ms |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
