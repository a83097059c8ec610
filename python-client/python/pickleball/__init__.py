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

from pickleball._internal import BALLISTA_VERSION, DATAFUSION_VERSION, ExecutionError
from pickleball.context import SessionContext, connect, standalone
from pickleball.dataframe import DataFrame, RecordBatch, RecordBatchStream

__all__ = [
    "BALLISTA_VERSION",
    "DATAFUSION_VERSION",
    "DataFrame",
    "ExecutionError",
    "RecordBatch",
    "RecordBatchStream",
    "SessionContext",
    "connect",
    "standalone",
]
__version__ = "0.1.0"
