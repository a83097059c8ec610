"""Row-wise Python UDFs (``pickleball.udf``): pickleball's sub-interpreter pool against the
CPython ceilings and stock datafusion-python, measured side by side in one run on the same data.

Three plain Python UDFs (integer arithmetic, string manipulation, regex + dict counting) run on:

(a) ceilings: a list comprehension in the main interpreter (one core), and the same loop on N
    own-GIL sub-interpreters (stdlib ``_interpreters``, one thread each, 1/N of the rows each,
    data generated inside each interpreter so nothing is transferred);
(b) pickleball: ``pickleball.standalone(executors=1, vcores=1)`` and ``vcores=N``, each in its
    own process (the sub-interpreter pool is sized by the first executor of a process), and
    ``vcores=1`` in a process pinned to one CPU, so that nothing else of the cluster (planning,
    Parquet decoding, shuffles) runs on a second core either;
(c) stock datafusion-python with ``target_partitions`` 1 and N, the same function wrapped as a
    pyarrow UDF that loops over ``to_pylist()``;
(d) DuckDB with 1 and N threads, the same function registered as a native (row-at-a-time)
    Python UDF, reading the same Parquet files;
(e) if PySpark and Java are installed (``.venv/bin/pip install pyspark``), PySpark on
    ``local[N]``, the same function as a Spark Python UDF (``benchmarks/spark_engine.py``).

Every engine runs each job ``--repeat`` times after a warm-up, in rounds: each round runs every
engine once on every case, so noise that lasts minutes on a shared VM (common: 10-40%) hits all
engines alike. pickleball's and PySpark's processes are stopped (SIGSTOP) while other engines
run.

Every engine computes the same aggregate over the UDF's results (so every row is converted and
the UDF called once per row, but little data comes back) and the results are asserted equal, as
is the result of the ``pickleball.udf`` object itself run by a local datafusion context.

Usage: .venv/bin/python benchmarks/rowwise.py [--rows 8000000] [--repeat 5]
``--rows`` is the row count of the integer UDF; the string UDF gets 1/4 of it, the regex UDF 1/32.
Writes benchmarks/results/rowwise.md.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import os
import platform
import re
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _interpreters
import datafusion
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

import pickleball

sys.path.insert(0, str(Path(__file__).parent))
import spark_engine  # beside this file
from workers import Worker

RESULTS = Path(__file__).parent / "results" / "rowwise.md"
CORES = os.cpu_count() or 1
FILES = 8

# -- the UDFs and their data: plain Python, also sent as source to the sub-interpreters ---------

WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
)  # fmt: skip
WORD_RE = re.compile(r"[a-z]+")


def mix(x: int) -> int:
    """Integer arithmetic."""
    return (x * 31 + 7) % 1000003


def clean(s: str) -> str:
    """String manipulation on a short string."""
    return s.strip().title().replace(" ", "_")


def top_word(text: str) -> str:
    """Regex word extraction and dict counting: the most frequent word and its count."""
    counts: dict[str, int] = {}
    for word in WORD_RE.findall(text.lower()):
        counts[word] = counts.get(word, 0) + 1
    best = max(counts, key=counts.__getitem__)
    return f"{best}:{counts[best]}"


def int_value(i: int) -> int:
    """Row ``i`` of the integer data."""
    return i


def str_value(i: int) -> str:
    """Row ``i`` of the short-string data, e.g. ``'  kilo bravo 17 '``."""
    return f"  {WORDS[i % 26]} {WORDS[i // 26 % 26]} {i % 97} "


def text_value(i: int) -> str:
    """Row ``i`` of the text data: a sentence of ten words with capitals and punctuation."""
    words = [WORDS[(i * (k + 3) + k * k) % 26] for k in range(10)]
    return f"{words[0].title()} {' '.join(words[1:5])}, {' '.join(words[5:])}! #{i % 1000}"


def summary(values: list[Any]) -> list[Any]:
    """What the SQL query returns, in Python: count, sum (of lengths for strings), max."""
    total = sum(len(v) for v in values) if isinstance(values[0], str) else sum(values)
    return [len(values), total, max(values)]


@dataclass(frozen=True)
class Case:
    """One UDF with its data."""

    label: str
    func: Callable[[Any], Any]
    make: Callable[[int], Any]
    arrow_type: pa.DataType
    result_type: pa.DataType
    share: int  # rows = --rows // share

    @property
    def name(self) -> str:
        """The UDF's (and the table's) SQL name."""
        return self.func.__name__

    @property
    def query_without_udf(self) -> str:
        """The job with the column itself in place of the UDF's result."""
        return self.query.replace(f"{self.name}(x)", "x")

    @property
    def query(self) -> str:
        """The job: the UDF on every row, aggregated to one row (same columns as summary)."""
        total = "sum(v)" if pa.types.is_integer(self.result_type) else "sum(character_length(v))"
        return (
            f"select count(v) as n, {total} as total, max(v) as top "
            f"from (select {self.name}(x) as v from {self.name})"
        )


CASES = (
    Case("integer arithmetic", mix, int_value, pa.int64(), pa.int64(), 1),
    Case("string manipulation", clean, str_value, pa.string(), pa.string(), 4),
    Case("regex + dict counting", top_word, text_value, pa.string(), pa.string(), 32),
)

# The source the sub-interpreters run: the same definitions as above.
PRELUDE = f"""from __future__ import annotations
import re
WORDS = {WORDS!r}
WORD_RE = re.compile({WORD_RE.pattern!r})
"""
KERNEL_SOURCE = "\n\n".join(
    [PRELUDE]
    + [inspect.getsource(f) for f in (mix, clean, top_word, int_value, str_value, text_value)]
    + [inspect.getsource(summary)]
)

# -- data and timing ----------------------------------------------------------------------------


def make_data(directory: Path, case: Case, rows: int) -> Path:
    """Write ``rows`` rows of ``case``'s data as FILES Parquet files (once; cached)."""
    target = directory / f"rowwise-{case.name}-{rows}"
    if (target / "_COMPLETE").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    per_file = -(-rows // FILES)
    for part in range(FILES):
        span = range(part * per_file, min(rows, (part + 1) * per_file))
        x = pa.array([case.make(i) for i in span], case.arrow_type)
        pq.write_table(pa.table({"x": x}), target / f"{part}.parquet")
    (target / "_COMPLETE").touch()
    return target


@dataclass
class Measure:
    """Wall seconds of the fastest repeat, the CPU cores kept busy (median), and the job's
    result."""

    seconds: float
    cores_busy: float
    result: list[Any]


@dataclass
class Sample:
    """One run of one job: wall seconds, CPU cores kept busy, the job's result."""

    wall: float
    cores_busy: float
    result: list[Any]


def sample(job: Callable[[], float | None], result: Callable[[], list[Any]]) -> Sample:
    """Run ``job`` once; it may return its own wall time (the sub-interpreter loops do)."""
    cpu, start = time.process_time(), time.perf_counter()
    own = job()
    wall = time.perf_counter() - start
    return Sample(wall if own is None else own, (time.process_time() - cpu) / wall, result())


def fastest(samples: list[Sample]) -> Measure:
    """The fastest run, with the median cores kept busy.

    The fastest, not the median: on a shared VM, noise (other tenants, frequency changes) only
    ever adds time, so the fastest run estimates each engine's own cost best; every engine is
    measured the same way.
    """
    return Measure(
        min(s.wall for s in samples),
        statistics.median(s.cores_busy for s in samples),
        samples[-1].result,
    )


Engine = Callable[[Case], Sample]
"""Runs one case's job once."""


def sql_job(
    ctx: datafusion.SessionContext, query: str
) -> tuple[Callable[[], None], Callable[[], list[Any]]]:
    """A job running ``query`` on ``ctx``, and a getter for its last result row as a list."""
    last: list[Any] = []

    def job() -> None:
        last[:] = list(ctx.sql(query).to_pylist()[0].values())

    return job, lambda: list(last)


# -- (a) ceilings -------------------------------------------------------------------------------


def main_loop(rows: Callable[[Case], int]) -> Engine:
    """(a) ``[f(x) for x in values]`` in the main interpreter, on one core."""
    values = {c.name: [c.make(i) for i in range(rows(c))] for c in CASES}
    out: list[Any] = []

    def run(case: Case) -> Sample:
        func, given = case.func, values[case.name]

        def job() -> None:
            out[:] = [func(v) for v in given]

        def result() -> list[Any]:
            found = summary(out)
            # Freeing these results is no later job's work: done outside the timing.
            out.clear()
            return found

        return sample(job, result)

    return run


def exec_in(interp: int, code: str) -> None:
    """Run ``code`` in sub-interpreter ``interp``; raise its exception here."""
    error = _interpreters.exec(interp, code)
    if error is not None:
        msg = f"in a sub-interpreter: {error.errdisplay}"
        raise RuntimeError(msg)


class SubInterpreters:
    """N own-GIL sub-interpreters (stdlib ``_interpreters``) holding KERNEL_SOURCE."""

    def __init__(self, n: int) -> None:
        """Create ``n`` interpreters and define the UDFs in each."""
        self.ids = [_interpreters.create() for _ in range(n)]
        self.run_all([KERNEL_SOURCE] * n)

    def run_all(self, codes: list[str]) -> float:
        """Run ``codes[i]`` in interpreter ``i``, all at once from one thread each; wall time."""
        errors: list[Exception] = []

        def run(interp: int, code: str) -> None:
            try:
                exec_in(interp, code)
            except RuntimeError as e:
                errors.append(e)

        threads = [
            threading.Thread(target=run, args=pair) for pair in zip(self.ids, codes, strict=True)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        return elapsed

    def summaries(self) -> list[list[Any]]:
        """Each interpreter's ``summary(out)``, read back through a pipe."""
        read, write = os.pipe()
        code = f"import json, os\nos.write({write}, (json.dumps(summary(out)) + '\\n').encode())"
        found = []
        with os.fdopen(read) as lines:
            try:
                for interp in self.ids:
                    exec_in(interp, code)
                    found.append(json.loads(lines.readline()))
            finally:
                os.close(write)
        return found

    def close(self) -> None:
        """Destroy the interpreters."""
        for interp in self.ids:
            _interpreters.destroy(interp)


def merge(parts: list[list[Any]]) -> list[Any]:
    """Combine per-slice summaries (count, total, max)."""
    return [sum(p[0] for p in parts), sum(p[1] for p in parts), max(p[2] for p in parts)]


def sub_interpreter_loop(pool: SubInterpreters, rows: Callable[[Case], int]) -> Engine:
    """(a) the same loop on N sub-interpreters, each making and processing 1/N of the rows."""
    n = len(pool.ids)
    for case in CASES:
        bounds = [rows(case) * k // n for k in range(n + 1)]
        pool.run_all(
            [
                f"values_{case.name} = [{case.make.__name__}(i) for i in range({lo}, {hi})]"
                for lo, hi in itertools.pairwise(bounds)
            ]
        )

    def run(case: Case) -> Sample:
        loop = f"out = [{case.name}(v) for v in values_{case.name}]"

        def result() -> list[Any]:
            found = merge(pool.summaries())
            # Freeing these results is no later job's work: done outside the timing.
            pool.run_all(["out = None"] * n)
            return found

        return sample(lambda: pool.run_all([loop] * n), result)

    return run


# -- (b) pickleball, one process per cluster configuration ---------------------------------------


@dataclass(frozen=True)
class Config:
    """A pickleball cluster configuration, run in a process of its own."""

    key: str
    vcores: int
    pin: bool  # pin the process to one CPU (threads started after inherit it)

    @property
    def label(self) -> str:
        """Column title."""
        return f"(b) pickleball vcores={self.vcores}" + (", pinned to 1 CPU" if self.pin else "")


CONFIGS = (
    Config("pb1pin", 1, pin=True),
    Config("pb1", 1, pin=False),
    Config("pbN", CORES, pin=False),
)


def pool_threads() -> int | None:
    """The number of sub-interpreter threads of this process (by thread name; Linux only)."""
    tasks = Path("/proc/self/task")
    if not tasks.exists():
        return None
    names = [(t / "comm").read_text() for t in tasks.iterdir() if (t / "comm").exists()]
    return sum(name.startswith("pickleball-subi") for name in names)


def pickleball_worker(args: argparse.Namespace) -> None:
    """Serve jobs on ``standalone(executors=1, vcores=args.worker)``: one JSON request per line
    on stdin (``{"case": name, "without_udf": bool}`` or ``{"pool": true}``), one JSON reply
    per line on stdout."""
    if args.pin:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with pickleball.standalone(executors=1, vcores=args.worker) as ctx:
        jobs = {}
        for case in CASES:
            path = make_data(Path(args.data_dir), case, args.rows // case.share)
            ctx.register_parquet(case.name, str(path))
            ctx.register_udf(pickleball.udf(case.func))
            jobs[case.name, False] = sql_job(ctx, case.query)
            # The same job without Python: what the engine costs.
            jobs[case.name, True] = sql_job(ctx, case.query_without_udf)
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("pool"):
                reply: dict[str, Any] = {"pool": pool_threads()}
            else:
                reply = sample(*jobs[request["case"], request["without_udf"]]).__dict__
            print(json.dumps(reply), flush=True)


def worker_engine(worker: Worker, *, without_udf: bool = False) -> Engine:
    """A worker's job for a case (or the same job without the UDF)."""
    return lambda case: Sample(**worker.request({"case": case.name, "without_udf": without_udf}))


def pickleball_worker_process(config: Config, args: argparse.Namespace) -> Worker:
    """(b) a cluster configuration's worker."""
    command = [sys.executable, __file__, "--worker", str(config.vcores)]
    command += ["--rows", str(args.rows), "--data-dir", args.data_dir]
    command += ["--pin"] if config.pin else []
    # Stopped clusters miss heartbeats: keep the scheduler from declaring them dead.
    return Worker(command, {**os.environ, "PICKLEBALL_EXECUTOR_TIMEOUT_SECONDS": "86400"})


def spark_worker_process(args: argparse.Namespace) -> Worker:
    """(e) PySpark on ``local[CORES]``'s worker."""
    command = [sys.executable, spark_engine.__file__, "--cores", str(CORES)]
    return Worker([*command, "--rows", str(args.rows), "--data-dir", args.data_dir])


# -- (c) stock datafusion-python ------------------------------------------------------------------


def stock_udf(case: Case) -> datafusion.ScalarUDF:
    """The UDF as a stock datafusion-python vectorized UDF looping over Python values."""
    func, result_type = case.func, case.result_type
    return datafusion.udf(
        lambda arr: pa.array([func(v) for v in arr.to_pylist()], result_type),
        [case.arrow_type],
        result_type,
        "immutable",
        name=case.name,
    )


def local_context(partitions: int) -> datafusion.SessionContext:
    """A stock datafusion-python context with ``partitions`` target partitions."""
    return datafusion.SessionContext(datafusion.SessionConfig().with_target_partitions(partitions))


# -- (d) DuckDB ---------------------------------------------------------------------------------

DUCKDB_TYPES = {pa.int64(): duckdb.sqltypes.BIGINT, pa.string(): duckdb.sqltypes.VARCHAR}


def stock_context(partitions: int, paths: dict[str, Path]) -> Engine:
    """(c) every case's stock UDF and table on a datafusion-python context."""
    ctx = local_context(partitions)
    jobs = {}
    for case in CASES:
        ctx.register_parquet(case.name, str(paths[case.name]))
        ctx.register_udf(stock_udf(case))
        jobs[case.name] = sql_job(ctx, case.query)
    return lambda case: sample(*jobs[case.name])


def duckdb_engine(threads: int, paths: dict[str, Path]) -> Engine:
    """(d) DuckDB with ``threads`` threads, each function a native Python UDF (one call per row,
    Python values in and out: what a DuckDB user writes)."""
    con = duckdb.connect(config={"threads": threads})
    for case in CASES:
        con.create_function(
            case.name, case.func, [DUCKDB_TYPES[case.arrow_type]], DUCKDB_TYPES[case.result_type]
        )
        parquet = f"{paths[case.name]}/*.parquet"
        con.execute(f"create view {case.name} as select * from read_parquet('{parquet}')")
    last: list[Any] = []

    def run(case: Case) -> Sample:
        def job() -> None:
            last[:] = list(con.sql(case.query).fetchall()[0])

        return sample(job, lambda: list(last))

    return run


# -- report ---------------------------------------------------------------------------------------


def rate(rows: int, m: Measure) -> str:
    """Rows per second, in millions, with the cores the run kept busy."""
    return f"{rows / m.seconds / 1e6:.2f} M ({m.cores_busy:.1f})"


def report(
    args: argparse.Namespace,
    results: dict[str, dict[str, Measure]],
    pools: dict[str, int | None],
    wall: float,
    load: str,
) -> str:
    """The Markdown results. ``pools``: sub-interpreters per configuration; ``load``: the
    machine's load average around the run."""
    n = CORES
    columns = {
        "main": "(a) CPython loop, 1 core",
        "subinterp": f"(a) {n} sub-interpreters",
        **{c.key: c.label for c in CONFIGS},
        "pb1pin-engine": "(b) pinned to 1 CPU, the same job without the UDF",
        "df1": "(c) datafusion-python, 1 partition",
        "dfN": f"(c) datafusion-python, {n} partitions",
        "duck1": "(d) DuckDB, 1 thread",
        "duckN": f"(d) DuckDB, {n} threads",
    }
    spark = "sparkN" in results[CASES[0].name]
    if spark:
        columns["sparkN"] = f"(e) PySpark local[{n}]"
    head = "| UDF | rows | " + " | ".join(columns.values()) + " |\n"
    head += "|---" * (len(columns) + 2) + "|\n"
    body = ""
    ratios = ""
    for case in CASES:
        rows = args.rows // case.share
        r = results[case.name]
        body += f"| {case.label} (`{case.name}`) | {rows:,} | "
        body += " | ".join(rate(rows, r[key]) for key in columns) + " |\n"

        def speed(key: str, r: dict[str, Measure] = r) -> float:
            return 1 / r[key].seconds

        ratios += (
            f"| {case.name} | {speed('pb1pin') / speed('main'):.2f} | "
            f"{speed('pbN') / speed('subinterp'):.2f} | {speed('pbN') / speed('dfN'):.2f} | "
            f"{speed('pbN') / speed('pb1pin'):.2f} | "
            f"{speed('subinterp') / speed('dfN'):.2f} | {speed('pbN') / speed('duckN'):.2f} |"
            + (f" {speed('pbN') / speed('sparkN'):.2f} |\n" if spark else "\n")
        )
    ratio_titles = [
        "UDF",
        "(b) pinned to 1 CPU / (a) 1 core (goal >= 0.8)",
        f"(b) {n} / (a) {n} sub-interpreters (goal >= 0.85)",
        f"(b) {n} / (c) {n} (goal >= 2.3)",
        f"(b) scaling: {n} / pinned",
        f"(a) {n} sub-interpreters / (c) {n}: the most (b) / (c) can be below the ceiling",
        f"(b) {n} / (d) DuckDB {n}",
        *([f"(b) {n} / (e) PySpark {n}"] if spark else []),
    ]
    pool_sizes = ", ".join(
        f"{c.label.removeprefix('(b) pickleball ')}: {pools[c.key]}" for c in CONFIGS
    )
    return (
        "# Row-wise Python UDFs: pickleball vs CPython ceilings, datafusion-python, DuckDB"
        + (", PySpark" if spark else "")
        + "\n\n"
        f"Machine: {platform.machine()}, {n} cores (os.cpu_count()), Python "
        f"{platform.python_version()}, datafusion-python {datafusion.__version__}, pyarrow "
        f"{pa.__version__}, DuckDB {duckdb.__version__}"
        + (f", PySpark {spark_engine.version()} (Arrow-optimized Python UDFs)" if spark else "")
        + f". Everything measured side by side in "
        f"one run of "
        f"`benchmarks/rowwise.py --rows {args.rows} --repeat {args.repeat}` ({wall:.0f} s, data "
        f"generation excluded), "
        f"on the same data ({FILES} Parquet files per UDF for (b) to (e); the same values "
        f"generated in memory for (a)); fastest of {args.repeat} runs after a warm-up (noise on a "
        f"shared VM only adds time), in rounds that run every engine once on every case, so "
        f"that slow minutes of the VM hit all engines alike. 1-minute "
        f"load average {load}.\n\n"
        f"Each job is `select count(v), sum(v) | sum(character_length(v)), max(v) from "
        f"(select f(x) as v from t)`: the UDF runs on every row, one row comes back. All engines "
        f"returned the same values, as did the `pickleball.udf` object run by a local "
        f"datafusion context.\n\n"
        f"Millions of rows/s (in parentheses: CPU cores kept busy, process CPU time / wall "
        f"time):\n\n{head}{body}\n"
        f"Sub-interpreters in pickleball's pool (threads counted by name): {pool_sizes}. "
        f"The 1-core goal uses the run pinned to one CPU, where the whole cluster shares that "
        f"core with the UDF.\n\n"
        f"Ratios of throughput:\n\n| {' | '.join(ratio_titles)} |\n"
        f"{'|---' * len(ratio_titles)}|\n{ratios}\n"
        f"The job without the UDF (same data and aggregate, on the pinned cluster) is the part "
        f"of (b)'s time that is not Python: Parquet decoding, aggregation, scheduling.\n"
    )


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by the whole machine (Linux; else 0) and by this process tree."""
    own = sum(
        u.ru_utime + u.ru_stime
        for u in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )
    stat = Path("/proc/stat")
    if not stat.exists():
        return 0.0, own
    # cpu  user nice system idle iowait irq softirq steal ...
    fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:9]]
    busy = sum(fields) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK"), own


def main() -> None:
    """Run every engine on every case, check the results agree, write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=8_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data-dir", default=str(Path.home() / ".cache" / "pickleball" / "bench"))
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        pickleball_worker(args)
        return

    def rows(case: Case) -> int:
        return args.rows // case.share

    paths = {c.name: make_data(Path(args.data_dir), c, rows(c)) for c in CASES}
    started, load_before, cpu_before = time.perf_counter(), os.getloadavg()[0], cpu_seconds()
    workers = {config.key: pickleball_worker_process(config, args) for config in CONFIGS}
    if spark_engine.available():
        workers["sparkN"] = spark_worker_process(args)
    pool = SubInterpreters(CORES)
    engines: dict[str, Engine] = {
        "main": main_loop(rows),
        "subinterp": sub_interpreter_loop(pool, rows),
        **{key: worker_engine(worker) for key, worker in workers.items()},
        "pb1pin-engine": worker_engine(workers["pb1pin"], without_udf=True),
        "df1": stock_context(1, paths),
        "dfN": stock_context(CORES, paths),
        "duck1": duckdb_engine(1, paths),
        "duckN": duckdb_engine(CORES, paths),
        **({"sparkN": worker_engine(workers["sparkN"])} if "sparkN" in workers else {}),
    }
    # Round 0 warms up. Every round runs every engine once on every case, so that noise lasting
    # minutes on a shared VM hits all engines alike instead of the ones measured at that time.
    samples: dict[str, dict[str, list[Sample]]] = {c.name: {k: [] for k in engines} for c in CASES}
    for round_ in range(args.repeat + 1):
        for case in CASES:
            for key, run in engines.items():
                found = run(case)
                if round_:
                    samples[case.name][key].append(found)
    results = {
        name: {key: fastest(runs) for key, runs in by_engine.items()}
        for name, by_engine in samples.items()
    }
    pools = {key: worker.close() for key, worker in workers.items()}
    for case in CASES:
        found = results[case.name]
        # pickleball's local semantics: the pickleball.udf object in a stock context.
        ctx = local_context(CORES)
        ctx.register_parquet(case.name, str(paths[case.name]))
        ctx.register_udf(pickleball.udf(case.func))
        job, last = sql_job(ctx, case.query)
        job()
        expected = found["main"].result
        for key, measure in [*found.items(), ("pickleball.udf locally", Measure(0, 0, last()))]:
            if key.endswith("-engine"):  # another query
                continue
            assert measure.result == expected, f"{case.name}: {key} {measure.result} != {expected}"
    pool.close()
    wall = time.perf_counter() - started
    machine, own = (after - before for after, before in zip(cpu_seconds(), cpu_before, strict=True))
    load = (
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after; other processes kept "
        f"{max(0.0, machine - own) / wall:.2f} cores busy on average during the run"
    )
    table = report(args, results, pools, wall, load)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
