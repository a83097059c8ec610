"""``pickleball demo``: the main job, on a sample dataset generated on this machine."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cloudpickle
import datafusion
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datafusion import col, lit
from datafusion import functions as f

import pickleball

VENDORS = ["acme", "blue", "citycab", "dash", "eagle", "fleet", "go", "hop"]


def generate_trips(directory: Path, rows: int, files: int = 8) -> Path:
    """Write ``rows`` synthetic taxi trips as ``files`` Parquet files under ``directory``.

    Deterministic: the same arguments always give the same data.

    Examples:
        >>> import tempfile
        >>> path = generate_trips(Path(tempfile.mkdtemp()), rows=1000, files=2)
        >>> sorted(p.name for p in path.glob('*.parquet'))
        ['part-0.parquet', 'part-1.parquet']

    """
    target = directory / f"trips-{rows}"
    marker = target / "_COMPLETE"
    if marker.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    per_file = -(-rows // files)
    for part in range(files):
        start = part * per_file
        n = max(0, min(per_file, rows - start))
        ids = pa.array(range(start, start + n), pa.int64())
        # A cheap deterministic hash spreads values without numpy.
        h = pc.bit_wise_and(pc.multiply(pc.add(ids, 7919), 2654435761), 0xFFFFFFFF)
        vendor = pc.take(pa.array(VENDORS), pc.remainder(h, len(VENDORS)))
        distance = pc.divide(pc.cast(pc.remainder(h, 2000), pa.float64()), 100.0)
        fare = pc.add(
            pc.multiply(distance, 2.5),
            pc.divide(pc.cast(pc.remainder(pc.shift_right(h, 8), 900), pa.float64()), 100.0),
        )
        passengers = pc.add(pc.remainder(pc.shift_right(h, 4), 4), 1)
        hour = pc.remainder(pc.shift_right(h, 12), 24)
        table = pa.table(
            {
                "trip_id": ids,
                "vendor": vendor,
                "distance_km": distance,
                "fare": fare,
                "passengers": pc.cast(passengers, pa.int32()),
                "pickup_hour": pc.cast(hour, pa.int32()),
            }
        )
        pq.write_table(table, target / f"part-{part}.parquet")
    marker.touch()
    return target


def _timed(label: str, job: Callable[[], object], local: Callable[[], object] | None) -> None:
    start = time.perf_counter()
    result = job()
    elapsed = time.perf_counter() - start
    line = f"{label:<44} cluster {elapsed * 1000:8.1f} ms"
    if local is not None:
        start = time.perf_counter()
        expected = local()
        local_elapsed = time.perf_counter() - start
        same = "same result" if expected == result else "DIFFERENT RESULT"
        line += f"   local datafusion {local_elapsed * 1000:8.1f} ms   ({same})"
    print(line)
    print(f"    {result}")


# Ship this module's functions by value: executors' sub-interpreters cannot import the
# pickleball package (its Rust extension does not load there), only plain Python.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pickleball.udf
def fare_band(fare: float | None) -> str | None:
    """Classify a fare; a row-wise Python UDF, run on every core of the cluster."""
    if fare is None:
        return None
    return "short" if fare < 15 else "medium" if fare < 40 else "long"


def run_jobs(ctx: datafusion.SessionContext, local: datafusion.SessionContext, data: Path) -> None:
    """Run the demo's SQL and DataFrame jobs on ``ctx`` and, for comparison, on ``local``."""
    for c in (ctx, local):
        c.register_udf(fare_band)
        c.register_parquet("trips", str(data))
        c.from_pydict(
            {"vendor": VENDORS, "fleet_size": [120, 80, 300, 45, 60, 210, 95, 30]}, name="vendors"
        )

    def sql(query: str) -> Callable[[datafusion.SessionContext], list[dict]]:
        return lambda c: c.sql(query).to_pylist()

    def avg_fare_by_vendor(c: datafusion.SessionContext) -> list[dict]:
        df = c.table("trips").filter(col("passengers") >= lit(2))
        df = df.aggregate([col("vendor")], [f.round(f.avg(col("fare")), lit(4)).alias("avg_fare")])
        return df.sort(col("vendor")).to_pylist()

    jobs = {
        "count(*)": sql("select count(*) as trips from trips"),
        "SQL: avg fare per vendor": sql(
            "select vendor, round(avg(fare), 4) as avg_fare from trips "
            "group by vendor order by vendor"
        ),
        "DataFrame: avg fare, 2+ passengers": avg_fare_by_vendor,
        "SQL: join with in-memory table": sql(
            "select v.vendor, v.fleet_size, count(*) as trips from trips t "
            "join vendors v on t.vendor = v.vendor group by v.vendor, v.fleet_size "
            "order by trips desc, v.vendor limit 3"
        ),
        "SQL: busiest hours (window)": sql(
            "select pickup_hour, trips, rank() over (order by trips desc) as r from "
            "(select pickup_hour, count(*) as trips from trips group by pickup_hour) "
            "order by r, pickup_hour limit 3"
        ),
        "SQL: row-wise Python UDF (fare_band)": sql(
            "select fare_band(fare) as band, count(*) as trips from trips "
            "group by band order by band"
        ),
    }
    for label, job in jobs.items():
        _timed(label, lambda job=job: job(ctx), lambda job=job: job(local))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pickleball demo``."""
    parser = argparse.ArgumentParser(prog="pickleball demo", description=__doc__)
    parser.add_argument("--rows", type=int, default=4_000_000, help="rows of sample data")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("PICKLEBALL_DEMO_DATA", "data"),
        help="where the sample dataset is written (reused when present)",
    )
    parser.add_argument("--url", help="run on this cluster (df://host:port) instead of standalone")
    parser.add_argument("--executors", type=int, default=2, help="standalone executors")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    data = generate_trips(Path(args.data_dir), args.rows)
    print(f"sample data: {args.rows:,} trips in {data} ({time.perf_counter() - start:.1f} s)")
    start = time.perf_counter()
    ctx = (
        pickleball.connect(args.url)
        if args.url
        else pickleball.standalone(executors=args.executors)
    )
    print(f"cluster: {ctx!r} ready in {(time.perf_counter() - start) * 1000:.0f} ms")
    try:
        run_jobs(ctx, datafusion.SessionContext(), data)
    finally:
        ctx.close()
    return 0
