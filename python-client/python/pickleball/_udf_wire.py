"""Reading datafusion-python's pickled UDF descriptions, on the client only.

The Rust client calls :func:`describe` for each Python UDF in a plan to build pickleball's
header. Unpickling here runs only the user's own code, in the user's own process.
"""

from __future__ import annotations

from typing import Any

import cloudpickle

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


def describe(family: str, blob: bytes) -> tuple[str, bytes, bytes, bytes | None, str, int]:
    """Return name, argument/result/state IPC schemas, volatility and window flags.

    Examples:
        >>> import pyarrow as pa
        >>> schema = pa.schema([("arg_0", pa.int64())]).serialize().to_pybytes()
        >>> blob = cloudpickle.dumps(("f", abs, schema, schema, "immutable"))
        >>> describe("scalar", blob)[0], describe("scalar", blob)[4]
        ('f', 'immutable')

    """
    parts = cloudpickle.loads(blob)
    if family == "aggregate":
        name, _factory, inputs, returns, state, volatility = parts
        return name, bytes(inputs), bytes(returns), bytes(state), str(volatility), 0
    name, factory, inputs, returns, volatility = parts
    flags = window_flags(factory()) if family == "window" else 0
    return name, bytes(inputs), bytes(returns), None, str(volatility), flags
