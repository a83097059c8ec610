"""DataFrames and contexts across process boundaries: ``pickle``, ``to_bytes``/``from_bytes``.

A DataFrame travels as its plan (Python UDFs inline, as the cluster receives them) plus the
in-memory tables it reads (Arrow IPC, by value); a context travels as the address and settings
of its cluster, and reconnects where it is unpickled. Nothing is registered again on the
receiving side, and the receiver's jobs run on the same cluster.

Format of ``DataFrame.to_bytes()``::

    magic    4 bytes   b"PBDF"
    version  u8        1
    python   u8, u8    major and minor of the Python that pickled the UDFs in the plan
    length   u32 LE    length of the JSON header
    header   JSON      {"plan": n, "tables": [[id, n], ...]}
    plan     n bytes   datafusion-python LogicalPlan.to_bytes()
    tables   ...       one Arrow IPC stream per in-memory table, in header order
"""

from __future__ import annotations

import json
import re
import struct
import sys
from typing import TYPE_CHECKING, Any

import datafusion
import pyarrow as pa

from pickleball._internal import MEMORY_PLACEHOLDER_ROOT

if TYPE_CHECKING:
    from pickleball.context import SessionContext
    from pickleball.dataframe import DataFrame

_MAGIC = b"PBDF"
_VERSION = 1
_FIXED = struct.Struct("<4sBBBI")
_PLACEHOLDER = re.compile(MEMORY_PLACEHOLDER_ROOT.encode() + rb"/([0-9a-f]{32})/")


def dataframe_to_bytes(df: DataFrame) -> bytes:
    """Serialize ``df``'s plan and the in-memory tables it reads."""
    plan = df.optimized_logical_plan().to_bytes()
    tables = df._ctx._memory_tables
    ids = list(dict.fromkeys(m.decode() for m in _PLACEHOLDER.findall(plan)))
    streams = []
    for table_id in ids:
        sink = pa.BufferOutputStream()
        table = tables[table_id]
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        streams.append(sink.getvalue().to_pybytes())
    header = json.dumps(
        {"plan": len(plan), "tables": [[i, len(s)] for i, s in zip(ids, streams, strict=True)]}
    ).encode()
    major, minor = sys.version_info[:2]
    fixed = _FIXED.pack(_MAGIC, _VERSION, major, minor, len(header))
    return b"".join([fixed, header, plan, *streams])


def dataframe_from_bytes(buf: bytes, ctx: SessionContext) -> DataFrame:
    """Rebuild a DataFrame written by :func:`dataframe_to_bytes` in ``ctx``."""
    if len(buf) < _FIXED.size or buf[:4] != _MAGIC:
        msg = "not a pickleball DataFrame (made by DataFrame.to_bytes())"
        raise ValueError(msg)
    _, version, major, minor, header_len = _FIXED.unpack_from(buf)
    if version != _VERSION:
        msg = f"pickleball DataFrame format version {version}; this pickleball reads {_VERSION}"
        raise ValueError(msg)
    here = sys.version_info[:2]
    if (major, minor) != here:
        msg = (
            f"this DataFrame was serialized under Python {major}.{minor} but this process runs "
            f"Python {here[0]}.{here[1]}; its Python UDFs are not portable across Python minor "
            "versions. Open it with the same Python minor version."
        )
        raise ValueError(msg)
    at = _FIXED.size
    header = json.loads(buf[at : at + header_len])
    at += header_len
    plan = buf[at : at + header["plan"]]
    at += header["plan"]
    for table_id, length in header["tables"]:
        ctx._memory_tables[table_id] = pa.ipc.open_stream(buf[at : at + length]).read_all()
        at += length
    logical = datafusion.LogicalPlan.from_bytes(ctx, plan)
    return ctx.create_dataframe_from_logical_plan(logical)


def restore_context(url: str, settings: dict[str, str], inline_udfs: bool) -> SessionContext:
    """Reconnect to the cluster at ``url`` (the target of a pickled context)."""
    from pickleball.context import connect

    ctx = connect(url, **settings)
    return ctx if inline_udfs else ctx.with_python_udf_inlining(enabled=False)


def restore_dataframe(
    url: str, settings: dict[str, str], inline_udfs: bool, buf: bytes
) -> DataFrame:
    """Reconnect and rebuild a pickled DataFrame."""
    return dataframe_from_bytes(buf, restore_context(url, settings, inline_udfs))


def context_reduce(ctx: SessionContext) -> tuple[Any, tuple[Any, ...]]:
    """Pickle support of :class:`pickleball.SessionContext`."""
    return restore_context, (ctx.url, dict(ctx._settings), ctx._inline_udfs)


def dataframe_reduce(df: DataFrame) -> tuple[Any, tuple[Any, ...]]:
    """Pickle support of :class:`pickleball.DataFrame`."""
    ctx = df._ctx
    return restore_dataframe, (ctx.url, dict(ctx._settings), ctx._inline_udfs, df.to_bytes())
