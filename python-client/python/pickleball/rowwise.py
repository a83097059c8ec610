"""Row-wise Python UDFs: plain Python on plain Python values, run on every core of the cluster.

A function decorated with :func:`udf` is called once per row with Python builtins (``int``,
``str``, ``datetime``, ``Decimal``, ``list``, ``dict``... and ``None`` for SQL NULL) and returns
one. On a pickleball executor it runs on a pool of own-GIL sub-interpreters, one per core, so
rows are processed in parallel; a function whose code needs numpy, pyarrow or another extension
that cannot load in a sub-interpreter falls back to the executor's main interpreter.

The object :func:`udf` returns is also a stock :class:`datafusion.ScalarUDF`: registered in a
local ``datafusion.SessionContext`` it runs row by row with the same results.
"""

from __future__ import annotations

import datetime
import decimal
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal

import cloudpickle
import datafusion
import pyarrow as pa
from datafusion import Expr

Lane = Literal["subinterpreter", "main"]

_SCALAR_TYPES: dict[Any, pa.DataType] = {
    int: pa.int64(),
    float: pa.float64(),
    str: pa.string(),
    bool: pa.bool_(),
    bytes: pa.binary(),
    datetime.date: pa.date32(),
    datetime.datetime: pa.timestamp("us"),
    datetime.time: pa.time64("us"),
    datetime.timedelta: pa.duration("us"),
    type(None): pa.null(),
}


def arrow_type(hint: Any) -> pa.DataType:
    """Map a Python type hint to an Arrow type; ``X | None`` is ``X`` (columns are nullable).

    Examples:
        >>> arrow_type(int)
        DataType(int64)
        >>> arrow_type(list[str] | None)
        ListType(list<item: string>)
        >>> arrow_type(dict[str, float])
        MapType(map<string, double>)

    """
    if isinstance(hint, pa.DataType):
        return hint
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(members) == 1:
            return arrow_type(members[0])
        msg = f"cannot map the union {hint!r} to one Arrow type; give the type explicitly"
        raise TypeError(msg)
    if origin is list:
        (item,) = typing.get_args(hint) or (None,)
        if item is None:
            msg = "list hints need an item type, e.g. list[int]"
            raise TypeError(msg)
        return pa.list_(arrow_type(item))
    if origin is dict:
        key, value = typing.get_args(hint) or (None, None)
        if key is None:
            msg = "dict hints need key and value types, e.g. dict[str, int]"
            raise TypeError(msg)
        return pa.map_(arrow_type(key), arrow_type(value))
    if hint is decimal.Decimal:
        msg = "decimal.Decimal needs a precision and scale: pass e.g. pa.decimal128(18, 2)"
        raise TypeError(msg)
    if hint in _SCALAR_TYPES:
        return _SCALAR_TYPES[hint]
    msg = f"no Arrow type for the hint {hint!r}; pass input_types= / return_type= explicitly"
    raise TypeError(msg)


class RowWise:
    """The vectorized face of a row-wise function: what the stock datafusion-python calls.

    Called with pyarrow arrays, it calls the function once per row with Python values and
    builds the result array. pickleball's executors do not use it: they read ``func`` and run it
    on their own row loop in Rust.

    Examples:
        >>> twice = RowWise(lambda x: None if x is None else 2 * x, pa.int64())
        >>> twice(pa.array([1, None, 3]))
        <pyarrow.lib.Int64Array object at ...>
        [
          2,
          null,
          6
        ]

    """

    def __init__(
        self, func: Callable[..., Any], return_type: pa.DataType, lane: Lane = "subinterpreter"
    ) -> None:
        """Wrap ``func``, whose results are of ``return_type``, preferring executor ``lane``."""
        self.func = func
        self.return_type = return_type
        self.lane = lane

    def __call__(self, *arrays: pa.Array) -> pa.Array:
        """Apply the function to each row of ``arrays``."""
        # Maps as dicts, as pickleball's executors pass them.
        columns = [a.to_pylist(maps_as_pydicts="lossy") for a in arrays]
        values = [self.func(*row) for row in zip(*columns, strict=True)]
        return pa.array(values, type=self.return_type)


class RowUDF(datafusion.ScalarUDF):
    """A row-wise Python UDF; make one with :func:`udf`.

    Calling it with expressions builds an expression, as for any ``ScalarUDF``; calling it
    with plain values calls the function (handy in unit tests).

    Examples:
        >>> @udf
        ... def shout(word: str | None) -> str | None:
        ...     return None if word is None else word.upper() + "!"
        >>> shout("hi")
        'HI!'
        >>> shout(datafusion.col("w"))
        Expr(shout(w))

    """

    def __init__(
        self,
        func: Callable[..., Any],
        input_types: Sequence[pa.DataType],
        return_type: pa.DataType,
        volatility: str,
        name: str,
        lane: Lane,
    ) -> None:
        """Build the UDF; prefer :func:`udf`."""
        if lane not in ("subinterpreter", "main"):
            msg = f"lane must be 'subinterpreter' or 'main', not {lane!r}"
            raise ValueError(msg)
        self.func = func
        self.input_types = list(input_types)
        self.return_type = return_type
        self.volatility = volatility
        self.lane = lane
        super().__init__(
            name,
            RowWise(func, return_type, lane),
            [pa.field(f"arg_{i}", t) for i, t in enumerate(self.input_types)],
            pa.field("value", return_type),
            volatility,
        )
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __call__(self, *args: Any) -> Any:
        """Build an expression when any argument is an ``Expr``; else call the function."""
        if any(isinstance(a, Expr) for a in args):
            exprs = [a if isinstance(a, Expr) else datafusion.lit(a) for a in args]
            return super().__call__(*exprs)
        return self.func(*args)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle by the function (cloudpickled: closures and lambdas too) and declaration.

        Examples:
            >>> import pickle
            >>> offset = 10
            >>> shift = udf(lambda x: x + offset, input_types=[pa.int64()],
            ...             return_type=pa.int64(), name="shift")
            >>> pickle.loads(pickle.dumps(shift))(1)
            11

        """
        declaration = (self.input_types, self.return_type, self.volatility, self.name, self.lane)
        return (_rebuild, (cloudpickle.dumps(self.func), *declaration))

    def __repr__(self) -> str:
        """Name, signature and lane."""
        args = ", ".join(str(t) for t in self.input_types)
        return f"pickleball.udf {self.name}({args}) -> {self.return_type} [{self.lane}]"


def _rebuild(
    func: bytes,
    input_types: Sequence[pa.DataType],
    return_type: pa.DataType,
    volatility: str,
    name: str,
    lane: Lane,
) -> RowUDF:
    """Unpickle a :class:`RowUDF`."""
    return RowUDF(cloudpickle.loads(func), input_types, return_type, volatility, name, lane)


def _argument_type(hint: Any) -> pa.DataType:
    """Map an argument's type hint to an Arrow type; ``bytes`` is ``binary_view``.

    As :func:`arrow_type` otherwise. ``binary_view`` is the one binary type DataFusion lets
    every binary column (``binary``, ``large_binary``, and ``binary_view``, as Parquet is
    read) be passed as; executors convert each of them to ``bytes`` without a cast.

    Examples:
        >>> _argument_type(bytes)
        DataType(binary_view)
        >>> _argument_type(str)
        DataType(string)

    """
    declared = arrow_type(hint)
    return pa.binary_view() if declared == pa.binary() else declared


def _declared_types(
    func: Callable[..., Any],
    input_types: Sequence[pa.DataType] | None,
    return_type: pa.DataType | None,
) -> tuple[list[pa.DataType], pa.DataType]:
    hints = typing.get_type_hints(func)
    parameters = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if input_types is None:
        missing = [p.name for p in parameters if p.name not in hints]
        if missing:
            msg = (
                f"UDF {func.__name__!r}: no type hint for {', '.join(missing)}; "
                "annotate the parameters or pass input_types="
            )
            raise TypeError(msg)
        input_types = [_argument_type(hints[p.name]) for p in parameters]
    if return_type is None:
        if "return" not in hints:
            msg = f"UDF {func.__name__!r}: no return annotation; annotate it or pass return_type="
            raise TypeError(msg)
        return_type = arrow_type(hints["return"])
    return list(input_types), return_type


def udf(
    func: Callable[..., Any] | None = None,
    *,
    input_types: Sequence[pa.DataType] | None = None,
    return_type: pa.DataType | None = None,
    volatility: str = "immutable",
    name: str | None = None,
    lane: Lane = "subinterpreter",
) -> Any:
    """Make a row-wise Python UDF, as a decorator (with or without arguments) or a call.

    Types come from the function's annotations unless ``input_types`` / ``return_type`` give
    Arrow types. ``lane="main"`` runs it in the executor's main interpreter (for code that
    needs numpy, pandas or pyarrow; such code also moves there by itself).

    Examples:
        >>> import pickleball
        >>> @pickleball.udf
        ... def clean(name: str, age: int | None) -> str:
        ...     return f"{name.strip().title()} ({age if age is not None else '?'})"
        >>> ctx = datafusion.SessionContext()
        >>> ctx.register_udf(clean)
        >>> ctx.sql("select clean(' ada ', 36) as c").to_pylist()
        [{'c': 'Ada (36)'}]
        >>> double = pickleball.udf(
        ...     lambda x: 2 * x, input_types=[pa.int32()], return_type=pa.int32(), name="double"
        ... )
        >>> double
        pickleball.udf double(int32) -> int32 [subinterpreter]

    """

    def build(function: Callable[..., Any]) -> RowUDF:
        inputs, returns = _declared_types(function, input_types, return_type)
        default = getattr(function, "__name__", type(function).__name__)
        if name is None and default == "<lambda>":
            msg = "a lambda needs a name: pickleball.udf(lambda ..., name='...')"
            raise ValueError(msg)
        # Like datafusion-python: default names are lower-cased, as SQL folds identifiers.
        return RowUDF(function, inputs, returns, volatility, name or default.lower(), lane)

    if func is None:
        return build
    return build(func)
