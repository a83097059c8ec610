"""The cluster-backed ``DataFrame``: datafusion-python's own, executing on Ballista."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import datafusion
import pyarrow as pa
from datafusion import functions as f
from datafusion import lit

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from pickleball.context import SessionContext

# Rows fetched from the cluster to render a DataFrame in a REPL or notebook.
_PREVIEW_ROWS = 21


class RecordBatch:
    """One batch of a result, as datafusion-python's ``RecordBatch``."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        """Wrap a pyarrow batch."""
        self._batch = batch

    def to_pyarrow(self) -> pa.RecordBatch:
        """Return the batch as a ``pyarrow.RecordBatch``."""
        return self._batch

    def __arrow_c_array__(self, requested_schema: object | None = None) -> object:
        """Arrow PyCapsule export."""
        return self._batch.__arrow_c_array__(requested_schema)


class RecordBatchStream:
    """Batches of a result as they arrive from the cluster, like datafusion-python's."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        """Wrap an iterator of pyarrow batches."""
        self._batches = batches

    def next(self) -> RecordBatch:
        """Return the next batch; raise ``StopIteration`` at the end."""
        return RecordBatch(next(self._batches))

    def __next__(self) -> RecordBatch:
        """Return the next batch."""
        return self.next()

    def __iter__(self) -> Iterator[RecordBatch]:
        """Iterate over the batches."""
        return self

    def __aiter__(self) -> AsyncIterator[RecordBatch]:
        """Iterate asynchronously (batches are still fetched on a background thread)."""
        return self._async()

    async def _async(self) -> AsyncIterator[RecordBatch]:
        for batch in self:
            yield batch


class DataFrame(datafusion.DataFrame):
    """A ``datafusion.DataFrame`` whose executing methods run on the pickleball cluster.

    Every transformation is datafusion-python's own and returns a pickleball DataFrame; every
    method that produces data (``collect``, ``to_pandas``, ``show``, ``count``, ``write_*``,
    the Arrow stream export...) submits the plan to the cluster.

    Examples:
        >>> import pickleball
        >>> from datafusion import col
        >>> with pickleball.standalone() as ctx:
        ...     df = ctx.from_pydict({"a": [3, 1, 2]}).sort(col("a"))
        ...     df.to_pydict()
        {'a': [1, 2, 3]}

    """

    def __init__(self, df: Any, ctx: SessionContext) -> None:
        """Wrap a datafusion-python internal DataFrame planned in ``ctx``."""
        super().__init__(df)
        self._ctx = ctx

    # -- execution on the cluster ----------------------------------------------------------

    def _batches(self) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        stream = self._ctx._job(self)
        schema = pa.schema(stream)
        return schema, iter(stream)

    def collect(self) -> list[pa.RecordBatch]:
        """Run on the cluster and return the result's batches."""
        return list(self._batches()[1])

    def collect_partitioned(self) -> list[list[pa.RecordBatch]]:
        """Run on the cluster; the result arrives as one partition."""
        return [self.collect()]

    def collect_column(self, column_name: str) -> pa.ChunkedArray:
        """Run on the cluster and return one column."""
        return self.select(datafusion.col(column_name)).to_arrow_table().column(0)

    def execute_stream(self) -> RecordBatchStream:
        """Run on the cluster and iterate over the result's batches as they arrive."""
        return RecordBatchStream(self._batches()[1])

    def execute_stream_partitioned(self) -> list[RecordBatchStream]:
        """Run on the cluster; the result arrives as one stream."""
        return [self.execute_stream()]

    def __iter__(self) -> Iterator[RecordBatch]:
        """Iterate over the result's batches."""
        return iter(self.execute_stream())

    def __aiter__(self) -> AsyncIterator[RecordBatch]:
        """Iterate asynchronously over the result's batches."""
        return self.execute_stream().__aiter__()

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """Arrow PyCapsule stream export; the job runs on the cluster as it is read."""
        schema, batches = self._batches()
        conformed = (b if b.schema == schema else b.cast(schema) for b in batches)
        reader = pa.RecordBatchReader.from_batches(schema, conformed)
        return reader.__arrow_c_stream__(requested_schema)

    def to_arrow_table(self) -> pa.Table:
        """Run on the cluster and return a ``pyarrow.Table``."""
        schema, stream = self._batches()
        batches = list(stream)
        if not batches:
            return pa.Table.from_batches([], schema=schema)
        # Executors may disagree on nullability (e.g. a constant column is non-null in one
        # partition's plan); like local datafusion, the first batch's schema wins.
        first = batches[0].schema
        return pa.Table.from_batches([b if b.schema == first else b.cast(first) for b in batches])

    def to_pandas(self) -> pd.DataFrame:
        """Run on the cluster and return a pandas DataFrame."""
        return self.to_arrow_table().to_pandas()

    def to_polars(self) -> pl.DataFrame:
        """Run on the cluster and return a polars DataFrame (needs polars)."""
        import polars as pl

        return pl.from_arrow(self.to_arrow_table())

    def to_pylist(self) -> list[dict[str, Any]]:
        """Run on the cluster and return the rows as dicts."""
        return self.to_arrow_table().to_pylist()

    def to_pydict(self) -> dict[str, list[Any]]:
        """Run on the cluster and return the columns as lists."""
        return self.to_arrow_table().to_pydict()

    def count(self) -> int:
        """Count the rows on the cluster."""
        counted = self.aggregate([], [f.count(lit(1)).alias("count")])
        return counted.to_arrow_table().column(0)[0].as_py()

    def _local(self, table: pa.Table) -> datafusion.DataFrame:
        """Return a plain local DataFrame over data already fetched from the cluster."""
        return datafusion.SessionContext().from_arrow(table)

    def show(self, num: int = 20) -> None:
        """Run on the cluster and print the first ``num`` rows."""
        self._local(self.limit(num + 1).to_arrow_table()).show(num)

    def __repr__(self) -> str:
        """Render the first rows, fetched from the cluster."""
        return repr(self._local(self.limit(_PREVIEW_ROWS).to_arrow_table()))

    def _repr_html_(self) -> str:
        """Render the first rows as HTML, fetched from the cluster."""
        return self._local(self.limit(_PREVIEW_ROWS).to_arrow_table())._repr_html_()

    def cache(self) -> DataFrame:
        """Run on the cluster and keep the result as an in-memory table of the context."""
        return self._ctx.from_arrow(self.to_arrow_table())

    def describe(self) -> DataFrame:
        """Summary statistics; the data is fetched from the cluster and summarized locally."""
        return self._ctx.from_arrow(self._local(self.to_arrow_table()).describe().to_arrow_table())

    def write_csv(self, *args: Any, **kwargs: Any) -> None:
        """Run on the cluster and write the result as CSV on this machine."""
        self._local(self.to_arrow_table()).write_csv(*args, **kwargs)

    def write_json(self, *args: Any, **kwargs: Any) -> None:
        """Run on the cluster and write the result as newline-delimited JSON on this machine."""
        self._local(self.to_arrow_table()).write_json(*args, **kwargs)

    def write_parquet(self, *args: Any, **kwargs: Any) -> None:
        """Run on the cluster and write the result as Parquet on this machine."""
        self._local(self.to_arrow_table()).write_parquet(*args, **kwargs)

    def write_parquet_with_options(self, *args: Any, **kwargs: Any) -> None:
        """Run on the cluster and write the result as Parquet on this machine."""
        self._local(self.to_arrow_table()).write_parquet_with_options(*args, **kwargs)

    def write_table(self, *args: Any, **kwargs: Any) -> None:
        """Not available: inserting into a table would run on the client, not the cluster."""
        msg = (
            "DataFrame.write_table is not supported by pickleball; collect the result or "
            "write it to files with write_parquet/write_csv/write_json"
        )
        raise NotImplementedError(msg)

    # -- across processes -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialize the plan (UDFs inline) and the in-memory tables it reads.

        Examples:
            >>> import pickleball
            >>> with pickleball.standalone() as ctx:
            ...     buf = ctx.from_pydict({"a": [1, 2]}).to_bytes()
            ...     pickleball.DataFrame.from_bytes(buf, ctx).to_pydict()
            {'a': [1, 2]}

        """
        from pickleball.transfer import dataframe_to_bytes

        return dataframe_to_bytes(self)

    @staticmethod
    def from_bytes(buf: bytes, ctx: SessionContext) -> DataFrame:
        """Rebuild a DataFrame made by :meth:`to_bytes`; it runs on ``ctx``'s cluster."""
        from pickleball.transfer import dataframe_from_bytes

        return dataframe_from_bytes(buf, ctx)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as plan, in-memory tables and the cluster's address and settings."""
        from pickleball.transfer import dataframe_reduce

        return dataframe_reduce(self)

    def explain(self, verbose: bool = False, analyze: bool = False, **kwargs: Any) -> None:
        """Print the plan as planned on the client; ``analyze=True`` is not supported."""
        if analyze:
            msg = (
                "explain(analyze=True) would run the query on the client; the scheduler's "
                "REST API (/api/job/<id>/stages) has the metrics of cluster jobs"
            )
            raise NotImplementedError(msg)
        super().explain(verbose, analyze, **kwargs)


# Methods that execute and are overridden above; everything else public that returns a
# DataFrame is a transformation whose result must stay a pickleball DataFrame.
_EXECUTING = {name for name, value in vars(DataFrame).items() if callable(value)}


def _wrap_transformation(name: str) -> None:
    stock = getattr(datafusion.DataFrame, name)

    def method(self: DataFrame, *args: Any, **kwargs: Any) -> Any:
        result = stock(self, *args, **kwargs)
        if isinstance(result, datafusion.DataFrame) and not isinstance(result, DataFrame):
            return DataFrame(result.df, self._ctx)
        return result

    method.__name__ = name
    method.__qualname__ = f"DataFrame.{name}"
    method.__doc__ = (
        f"Same as :py:meth:`datafusion.DataFrame.{name}`; a DataFrame result runs on the cluster."
    )
    setattr(DataFrame, name, method)


for _name, _value in list(vars(datafusion.DataFrame).items()):
    if (
        callable(_value)
        and not isinstance(_value, staticmethod | classmethod)
        and _name not in _EXECUTING
    ):
        if _name.startswith("_") and _name != "__getitem__":
            continue
        _wrap_transformation(_name)
