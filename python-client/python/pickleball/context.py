"""The cluster-backed ``SessionContext``: datafusion-python's own, executing on Ballista."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import datafusion
import pyarrow as pa

from pickleball._internal import MEMORY_PLACEHOLDER_ROOT, Cluster
from pickleball.dataframe import DataFrame

if TYPE_CHECKING:
    from types import TracebackType

# Keys the local planning context does not know; they only go to the cluster.
_CLUSTER_ONLY_PREFIXES = ("ballista.", "pickleball.")

# Methods of datafusion.SessionContext that build a DataFrame from the session's catalog or
# from files; wrapping their result is all that is needed for the job to run on the cluster.
_PLANNING_METHODS = (
    "sql",
    "sql_with_options",
    "table",
    "read_parquet",
    "read_csv",
    "read_json",
    "read_avro",
    "read_arrow",
    "read_table",
    "read_empty",
    "empty_table",
    "execute_logical_plan",
    "create_dataframe_from_logical_plan",
)

_anonymous = itertools.count()


class SessionContext(datafusion.SessionContext):
    """A ``datafusion.SessionContext`` whose DataFrames execute on a pickleball cluster.

    Get one from :func:`connect` or :func:`standalone`. Registration, SQL and DataFrame
    building are datafusion-python's own; collecting runs on the cluster. In-memory tables
    (``from_pydict``, ``from_arrow``, ``register_record_batches``...) travel inside the plan,
    so the cluster needs no access to the client's files.

    Examples:
        >>> import pickleball
        >>> ctx = pickleball.standalone()
        >>> ctx.from_pylist([{"x": 1}, {"x": 2}]).count()
        2
        >>> ctx.close()

    """

    def __init__(self, cluster: Cluster, settings: dict[str, str] | None = None) -> None:
        """Wrap a connected :class:`pickleball._internal.Cluster`; prefer :func:`connect`."""
        settings = dict(settings or {})
        local = {k: v for k, v in settings.items() if not k.startswith(_CLUSTER_ONLY_PREFIXES)}
        super().__init__(datafusion.SessionConfig(local) if local else None)
        self._cluster = cluster
        self._settings = settings
        self._memory_tables: dict[str, pa.Table] = {}
        self._memory_names: dict[str, str] = {}
        self._inline_udfs = True

    @property
    def url(self) -> str:
        """The scheduler URL, ``df://host:port``."""
        return self._cluster.url

    def __repr__(self) -> str:
        """Show where jobs run."""
        kind = "standalone" if self._cluster.is_standalone else "remote"
        return f"pickleball.SessionContext({kind} cluster at {self.url})"

    def close(self) -> None:
        """Stop the in-process cluster of :func:`standalone`; no-op for a remote cluster."""
        self._cluster.close()

    def __enter__(self) -> SessionContext:
        """Use the context in a ``with`` block; the cluster stops at its end."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop a standalone cluster."""
        self.close()

    # -- in-memory tables -------------------------------------------------------------------

    def _register_memory(self, name: str | None, table: pa.Table) -> str:
        """Register ``table`` under ``name`` (or a fresh one) by value; return the name."""
        if name is None:
            name = f"__pickleball_anonymous_{next(_anonymous)}"
        else:
            self._forget_memory(name)
        table_id = uuid.uuid4().hex
        self._memory_tables[table_id] = table
        self._memory_names[name] = table_id
        super().register_listing_table(
            name,
            f"/{MEMORY_PLACEHOLDER_ROOT}/{table_id}/",
            file_extension=".pickleball-memory",
            schema=table.schema,
        )
        return name

    def _forget_memory(self, name: str) -> None:
        table_id = self._memory_names.pop(name, None)
        if table_id is not None:
            self._memory_tables.pop(table_id, None)
            super().deregister_table(name)

    def _scratch(self) -> datafusion.SessionContext:
        """Return a local context that converts Python data exactly as the stock API does."""
        return datafusion.SessionContext()

    def _memory_frame(self, stock: datafusion.DataFrame, name: str | None) -> DataFrame:
        table = stock.to_arrow_table()
        return self.table(self._register_memory(name, table))

    def from_pydict(self, data: dict[str, list[Any]], name: str | None = None) -> DataFrame:
        """Create a DataFrame from a dict of columns; the data travels with the plan."""
        return self._memory_frame(self._scratch().from_pydict(data), name)

    def from_pylist(self, data: list[dict[str, Any]], name: str | None = None) -> DataFrame:
        """Create a DataFrame from a list of rows; the data travels with the plan."""
        return self._memory_frame(self._scratch().from_pylist(data), name)

    def from_arrow(self, data: Any, name: str | None = None) -> DataFrame:
        """Create a DataFrame from Arrow data (pyarrow, polars, ...); it travels with the plan."""
        return self._memory_frame(self._scratch().from_arrow(data), name)

    def from_pandas(self, data: Any, name: str | None = None) -> DataFrame:
        """Create a DataFrame from a pandas DataFrame; the data travels with the plan."""
        return self._memory_frame(self._scratch().from_pandas(data), name)

    def from_polars(self, data: Any, name: str | None = None) -> DataFrame:
        """Create a DataFrame from a polars DataFrame; the data travels with the plan."""
        return self._memory_frame(self._scratch().from_polars(data), name)

    def create_dataframe(
        self,
        partitions: list[list[pa.RecordBatch]],
        name: str | None = None,
        schema: pa.Schema | None = None,
    ) -> DataFrame:
        """Create a DataFrame from record batch partitions; they travel with the plan."""
        return self._memory_frame(self._scratch().create_dataframe(partitions, None, schema), name)

    def read_batch(self, batch: pa.RecordBatch) -> DataFrame:
        """Create a DataFrame reading one record batch; it travels with the plan."""
        return self.read_batches([batch])

    def read_batches(self, batches: Iterable[pa.RecordBatch]) -> DataFrame:
        """Create a DataFrame reading record batches; they travel with the plan."""
        return self._memory_frame(self._scratch().read_batches(list(batches)), None)

    def register_record_batches(self, name: str, partitions: list[list[pa.RecordBatch]]) -> None:
        """Register record batch partitions as table ``name``; they travel with the plan."""
        self._memory_frame(self._scratch().create_dataframe(partitions), name)

    def register_batch(self, name: str, batch: pa.RecordBatch) -> None:
        """Register one record batch as table ``name``; it travels with the plan."""
        self._register_memory(name, pa.Table.from_batches([batch]))

    def register_dataset(self, name: str, dataset: Any) -> None:
        """Register a pyarrow dataset, read on the client, as table ``name`` (by value)."""
        self._register_memory(name, dataset.to_table())

    def register_table(self, name: str, table: Any) -> None:
        """Register a table; Arrow data (pyarrow Table, ...) is carried by value."""
        if isinstance(table, pa.Table):
            self._register_memory(name, table)
        elif (
            hasattr(table, "to_table")
            and hasattr(table, "schema")
            and not isinstance(table, datafusion.DataFrame)
        ):
            self._register_memory(name, table.to_table())
        elif hasattr(table, "__arrow_c_stream__") and not isinstance(table, datafusion.DataFrame):
            self._register_memory(name, pa.table(table))
        else:
            self._forget_memory(name)
            super().register_table(name, table)

    def deregister_table(self, name: str) -> None:
        """Remove table ``name`` (and the data of an in-memory table)."""
        if name in self._memory_names:
            self._forget_memory(name)
        else:
            super().deregister_table(name)

    def register_udf(self, udf: Any) -> None:
        """Register a scalar UDF, also one made with the stock ``@udf(...)`` decorator."""
        super().register_udf(_function_behind(udf, datafusion.ScalarUDF))

    def register_udaf(self, udaf: Any) -> None:
        """Register an aggregate UDF, also one made with the stock ``@udaf(...)`` decorator."""
        super().register_udaf(_function_behind(udaf, datafusion.AggregateUDF))

    def register_udwf(self, udwf: Any) -> None:
        """Register a window UDF, also one made with the stock ``@udwf(...)`` decorator."""
        super().register_udwf(_function_behind(udwf, datafusion.WindowUDF))

    def with_python_udf_inlining(self, *, enabled: bool) -> SessionContext:
        """Return a context sharing this session that sends Python UDFs inline or by name.

        With ``enabled=False``, jobs carry each Python UDF's name and signature but not its
        code; executors run the UDF registered under that name with ``--udf-module``, and an
        executor with ``--python-udfs deny`` accepts the job. Expressions pickled through
        :func:`datafusion.ipc.set_sender_ctx` follow the same setting, as in datafusion-python.

        Examples:
            >>> import pickleball
            >>> with pickleball.standalone() as ctx:
            ...     strict = ctx.with_python_udf_inlining(enabled=False)
            ...     strict.sql("select 1 as one").to_pylist()
            [{'one': 1}]

        """
        # Not copy.copy: that goes through __reduce__, which reconnects with a fresh session.
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.ctx = self.ctx.with_python_udf_inlining(enabled)
        new._inline_udfs = enabled
        return new

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as the cluster's address and settings; unpickling reconnects.

        A standalone context's cluster lives in the process that started it: elsewhere on
        the same machine the copy connects to it while that process runs.
        """
        from pickleball.transfer import context_reduce

        return context_reduce(self)

    @property
    def python_udf_inlining(self) -> bool:
        """Whether jobs from this context carry their Python UDFs' code (the default)."""
        return self._inline_udfs

    def execute(self, plan: Any, partitions: int) -> Any:
        """Not available: a physical plan built on the client cannot run on the cluster."""
        msg = (
            "SessionContext.execute(plan, partition) runs a client-side physical plan, which "
            "pickleball does not do; build a DataFrame and collect it instead"
        )
        raise NotImplementedError(msg)

    def _job(self, df: datafusion.DataFrame) -> Any:
        """Submit ``df``'s plan; the returned stream yields exportable batches."""
        # The optimized plan: subqueries are decorrelated into joins there, and DataFusion
        # cannot serialize some subquery expressions (EXISTS, ...) of an unoptimized plan.
        try:
            plan = df.optimized_logical_plan().to_bytes()
        except Exception as e:
            if "Error serializing custom table" in str(e):
                raise NotImplementedError(_LOCAL_TABLE) from e
            raise
        return self._cluster.execute(plan, self._memory_tables, inline_udfs=self._inline_udfs)


_LOCAL_TABLE = (
    "this query reads a table that exists only in this process and cannot be sent to the "
    "cluster: a table function (range(), generate_series(), ...) or a custom table provider. "
    "Build the rows with ctx.from_pydict() / from_arrow() (sent with the job), or write them "
    "to files the executors can read"
)


def _function_behind(obj: Any, kind: type) -> Any:
    """Return the UDF object behind a stock decorator's wrapper function, or ``obj`` itself.

    datafusion-python's ``@udf(...)``/``@udaf(...)``/``@udwf(...)`` decorators return a plain
    function that builds expressions; the UDF it calls sits in its closure.

    Examples:
        >>> import pyarrow as pa
        >>> @datafusion.udf([pa.int64()], pa.int64(), "immutable", name="twice")
        ... def twice(x):
        ...     return x
        >>> _function_behind(twice, datafusion.ScalarUDF).name
        'twice'

    """
    if isinstance(obj, kind):
        return obj
    for cell in getattr(obj, "__closure__", None) or ():
        if isinstance(cell.cell_contents, kind):
            return cell.cell_contents
    return obj


def _wrap_planning_method(name: str) -> None:
    stock = getattr(datafusion.SessionContext, name)

    def method(self: SessionContext, *args: Any, **kwargs: Any) -> Any:
        result = stock(self, *args, **kwargs)
        if isinstance(result, datafusion.DataFrame) and not isinstance(result, DataFrame):
            return DataFrame(result.df, self)
        return result

    method.__name__ = name
    method.__qualname__ = f"SessionContext.{name}"
    method.__doc__ = (
        f"Same as :py:meth:`datafusion.SessionContext.{name}`; the DataFrame runs on the cluster."
    )
    setattr(SessionContext, name, method)


for _name in _PLANNING_METHODS:
    if hasattr(datafusion.SessionContext, _name):
        _wrap_planning_method(_name)


def _split_settings(settings: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in settings.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        out[key] = str(value)
    return out


def connect(
    url: str, *, connect_timeout: float = 5.0, token: str | None = None, **settings: Any
) -> SessionContext:
    """Connect to the pickleball scheduler at ``url`` (``df://host:port``).

    ``settings`` are DataFusion or Ballista configuration keys, passed with ``**{...}``
    because they contain dots. Fails with ``ConnectionError`` within ``connect_timeout``
    seconds if the scheduler cannot be reached. ``token`` is the cluster's shared secret
    (default: the ``PICKLEBALL_TOKEN`` environment variable) for a cluster started with one;
    a missing or wrong token fails with ``PermissionError``.

    Examples:
        >>> import pickleball
        >>> pickleball.connect("df://127.0.0.1:1", connect_timeout=1)
        Traceback (most recent call last):
        ...
        ConnectionError: cannot reach the pickleball scheduler at df://127.0.0.1:1: ...

    """
    config = _split_settings(settings)
    if token is None:
        # An empty PICKLEBALL_TOKEN is refused below, not taken for "no token".
        token = os.environ.get("PICKLEBALL_TOKEN")
    cluster = Cluster.connect(url, config, connect_timeout, token)
    return SessionContext(cluster, config)


def standalone(executors: int = 1, vcores: int | None = None, **settings: Any) -> SessionContext:
    """Start a scheduler and ``executors`` executors in this process and connect to them.

    ``vcores`` is the number of task slots per executor (default: every core). Stop the
    cluster with ``ctx.close()`` or use the context in a ``with`` block.

    Examples:
        >>> import pickleball
        >>> with pickleball.standalone() as ctx:
        ...     ctx.sql("select 1 + 1 as two").to_pylist()
        [{'two': 2}]

    """
    config = _split_settings(settings)
    cluster = Cluster.standalone(executors, vcores or 0, config)
    return SessionContext(cluster, config)
