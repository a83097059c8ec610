"""Reading datafusion-python's pickled UDF descriptions, on the client only.

The Rust client calls :func:`describe` for each Python UDF in a plan to build pickleball's
header. Unpickling here runs only the user's own code, in the user's own process.
"""

from __future__ import annotations

from typing import Any

import cloudpickle

from pickleball.rowwise import RowWise

# Bits of pickleball's window flags (codec/src/udf/frame.rs, WindowFlags).
_WINDOW_FLAGS = {
    "uses_window_frame": 1,
    "supports_bounded_execution": 2,
    "include_rank": 4,
    "is_causal": 8,
}


def window_flags(evaluator: Any) -> int:
    """Planning properties of a WindowEvaluator as flag bits (missing methods mean False).

    Examples:
        >>> class Ranked:
        ...     def include_rank(self):
        ...         return True
        >>> window_flags(Ranked())
        4

    """
    flags = 0
    for method, bit in _WINDOW_FLAGS.items():
        if callable(getattr(evaluator, method, None)) and getattr(evaluator, method)():
            flags |= bit
    return flags


def describe(
    family: str, blob: bytes
) -> tuple[str, bytes, bytes, bytes | None, str, int, str, str, bytes | None]:
    """Return what pickleball's header needs to know about a stock UDF payload.

    That is: name, argument/result/state IPC schemas, volatility, window flags, calling
    convention (``pyarrow`` or ``rows``), lane, and for row-wise UDFs the payload to send
    instead of the stock blob (the plain function, cloudpickled).

    Examples:
        >>> import pyarrow as pa
        >>> schema = pa.schema([("arg_0", pa.int64())]).serialize().to_pybytes()
        >>> blob = cloudpickle.dumps(("f", abs, schema, schema, "immutable"))
        >>> described = describe("scalar", blob)
        >>> described[0], described[4], described[6], described[7]
        ('f', 'immutable', 'pyarrow', 'main')
        >>> from pickleball.rowwise import RowWise
        >>> blob = cloudpickle.dumps(("g", RowWise(abs, pa.int64()), schema, schema, "immutable"))
        >>> described = describe("scalar", blob)
        >>> described[6], described[7], cloudpickle.loads(described[8]) is abs
        ('rows', 'subinterpreter', True)

    """
    parts = cloudpickle.loads(blob)
    if family == "aggregate":
        name, _factory, inputs, returns, state, volatility = parts
        return name, bytes(inputs), bytes(returns), bytes(state), str(volatility), 0, *_PYARROW
    name, factory, inputs, returns, volatility = parts
    flags = window_flags(factory()) if family == "window" else 0
    convention: tuple[str, str, bytes | None] = _PYARROW
    if isinstance(factory, RowWise):
        convention = ("rows", factory.lane, cloudpickle.dumps(factory.func))
    return name, bytes(inputs), bytes(returns), None, str(volatility), flags, *convention


# Stock UDFs: pyarrow arrays in and out, in the executor's main interpreter, stock payload.
_PYARROW: tuple[str, str, bytes | None] = ("pyarrow", "main", None)
