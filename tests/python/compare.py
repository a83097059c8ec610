"""Result comparison that ignores row order and float summation noise, nothing else."""

from __future__ import annotations

import datetime
import decimal
import math
from typing import Any

import pyarrow as pa


def _canonical_value(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return ("nan",)
        # Partial sums add up in a different order on a cluster: compare 9 significant digits.
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical_value(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_canonical_value(v) for v in value)
    return value


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        (
            v is None,
            repr(v) if not isinstance(v, int | float | decimal.Decimal | datetime.date) else v,
        )
        for v in row
    )


def canonical(table: pa.Table, ordered: bool = False) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows; rows sorted unless ``ordered`` (the query's order matters)."""
    rows = [tuple(_canonical_value(v) for v in row.values()) for row in table.to_pylist()]
    if not ordered:
        rows.sort(key=_sort_key)
    return table.column_names, rows


def assert_same_result(got: pa.Table, expected: pa.Table, ordered: bool = False) -> None:
    """Same column names, same types and same rows (in order when ``ordered``)."""
    assert got.schema.names == expected.schema.names
    assert [f.type for f in got.schema] == [f.type for f in expected.schema]
    assert canonical(got, ordered) == canonical(expected, ordered)
