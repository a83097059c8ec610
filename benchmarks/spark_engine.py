"""(e) PySpark for ``benchmarks/rowwise.py``: the same functions as Spark Python UDFs on
``local[N]``, reading the same Parquet files.

Optional: ``rowwise.py`` runs it when ``pyspark`` and a Java runtime are installed
(``.venv/bin/pip install pyspark``; not part of ``make test``). Spark's Python UDFs run in
worker processes, so unlike datafusion-python's and DuckDB's they use every core; they are
Arrow-optimized (``spark.sql.execution.pythonUDF.arrow.enabled``), Spark's faster setting for
plain Python UDFs (5-25% faster than pickled rows here, most for the cheapest UDF).

Run by ``rowwise.py`` as a worker process (``--cores N``), one JSON request per line on stdin
(``{"case": name}`` or ``{"pool": true}``), one JSON reply per line on stdout, in a process
group of its own that the benchmark stops (SIGSTOP) between jobs, JVM included.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).parent


def available() -> bool:
    """Whether PySpark and a Java runtime are installed."""
    return importlib.util.find_spec("pyspark") is not None and (
        shutil.which("java") is not None or "JAVA_HOME" in os.environ
    )


def version() -> str:
    """PySpark's version."""
    import pyspark

    return pyspark.__version__


def session_cpu_seconds() -> float:
    """CPU seconds used so far by every process of this session: the driver, the JVM and
    Spark's Python workers (Linux; else this process alone)."""
    proc = Path("/proc")
    if not proc.exists():
        return time.process_time()
    session, total = os.getsid(0), 0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # After the command's closing parenthesis: state, ppid, pgrp, session, ...
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def serve(cores: int, rows: int, data_dir: str) -> None:
    """Register every case's table and UDF on ``local[cores]``, then answer requests."""
    # Spark's Python workers run this interpreter and import `rowwise` for the functions.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join([str(BENCHMARKS), os.environ.get("PYTHONPATH", "")])
    sys.path.insert(0, str(BENCHMARKS))
    import rowwise
    from pyspark.sql import SparkSession
    from pyspark.sql.types import LongType, StringType

    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(cores))
        .config("spark.sql.execution.pythonUDF.arrow.enabled", "true")
        # Stopped between jobs: keep heartbeats from timing out.
        .config("spark.network.timeout", "3600s")
        .config("spark.executor.heartbeatInterval", "600s")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    for case in rowwise.CASES:
        path = rowwise.make_data(Path(data_dir), case, rows // case.share)
        spark.read.parquet(str(path)).createOrReplaceTempView(case.name)
        spark_type = LongType() if case.result_type == rowwise.pa.int64() else StringType()
        spark.udf.register(case.name, case.func, spark_type)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("pool"):
            reply: dict[str, Any] = {"pool": None}
        else:
            query = next(c.query for c in rowwise.CASES if c.name == request["case"])
            cpu, start = session_cpu_seconds(), time.perf_counter()
            row = spark.sql(query).collect()[0]
            wall = time.perf_counter() - start
            reply = {
                "wall": wall,
                "cores_busy": (session_cpu_seconds() - cpu) / wall,
                "result": list(row),
            }
        print(json.dumps(reply), flush=True)
    spark.stop()


def main() -> None:
    """Parse the worker's arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cores", type=int, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    serve(args.cores, args.rows, args.data_dir)


if __name__ == "__main__":
    main()
