"""pickleball: run datafusion-python jobs, Python UDFs included, on a Ballista cluster.

Build plans with the stock ``datafusion`` API; get the context from pickleball so that every
job runs on the cluster::

    >>> import pickleball
    >>> with pickleball.standalone() as ctx:
    ...     _ = ctx.from_pydict({"a": [1, 2, 3]}, name="t")
    ...     ctx.sql("select sum(a) as s from t").to_pydict()
    {'s': [6]}
"""

from __future__ import annotations

import atexit
import os

from pickleball._internal import (
    BALLISTA_VERSION,
    DATAFUSION_VERSION,
    ExecutionError,
    stop_subinterpreters,
    suspend_subinterpreters,
)
from pickleball.context import SessionContext, connect, standalone
from pickleball.dataframe import DataFrame, RecordBatch, RecordBatchStream
from pickleball.rowwise import RowUDF, udf

__all__ = [
    "BALLISTA_VERSION",
    "DATAFUSION_VERSION",
    "DataFrame",
    "ExecutionError",
    "RecordBatch",
    "RecordBatchStream",
    "RowUDF",
    "SessionContext",
    "connect",
    "standalone",
    "udf",
]
__version__ = "0.1.0"

# Sub-interpreters of in-process executors must end before CPython finalizes, and before a
# fork (CPython 3.13's child crashes otherwise); after a fork they restart when next needed.
atexit.register(stop_subinterpreters)
os.register_at_fork(before=suspend_subinterpreters)
