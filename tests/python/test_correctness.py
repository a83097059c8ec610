"""Every query gives the same result on the cluster as on a plain local datafusion context."""

from __future__ import annotations

from pathlib import Path

import datafusion
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from compare import assert_same_result
from datafusion import col, lit
from datafusion import functions as f

import pickleball

pytestmark = pytest.mark.timeout(120)


def register_all(ctx: datafusion.SessionContext, data: dict[str, Path]) -> None:
    """The same tables, from every kind of source, in ``ctx``."""
    ctx.register_parquet("sales", str(data["parquet"]))
    ctx.register_csv("sales_csv", str(data["csv"]))
    ctx.register_json("sales_json", str(data["json"]))
    ctx.register_parquet("customers", str(data["customers"]))
    ctx.from_pydict(
        {
            "product": [f"p{i}" for i in range(11)],
            "category": [
                "tools",
                "toys",
                "food",
                "tools",
                None,
                "toys",
                "food",
                "garden",
                "tools",
                "toys",
                "food",
            ],
            "price": [1.5, 2.0, 3.25, 4.0, 5.5, 6.0, 7.75, 8.0, 9.5, 10.0, 11.25],
        },
        name="products",
    )
    ctx.from_pylist(
        [{"day": d, "holiday": d in (1, 14, 25)} for d in range(1, 29)], name="calendar"
    )


# (query, ordered): `ordered` when the query's ORDER BY fixes the whole row order.
QUERIES: list[tuple[str, bool]] = [
    # scans and filters, every source
    ("select * from sales where id < 20", False),
    ("select * from sales_csv where amount > 95", False),
    ("select * from sales_json where product = 'p3' and day = 5", False),
    ("select count(*) as n from sales_csv", False),
    ("select count(*) as n, sum(quantity) as q from sales_json", False),
    ("select * from products", False),
    ("select id, amount * 2 as a2, upper(product) as up from sales where quantity is null", False),
    ("select id from sales where product in ('p1', 'p2') and amount between 10 and 20", False),
    (
        "select id, case when amount > 50 then 'high' else 'low' end as band from sales where id % 50 = 0",
        False,
    ),
    # aggregates
    (
        "select product, count(*) as n, sum(amount) as s, avg(amount) as a from sales group by product",
        False,
    ),
    (
        "select product, min(amount) as lo, max(amount) as hi, count(quantity) as q from sales_csv group by product",
        False,
    ),
    ("select day, count(distinct customer_id) as c from sales group by day", False),
    (
        "select product, day, sum(quantity) as q from sales group by product, day having sum(quantity) > 40",
        False,
    ),
    ("select stddev(amount) as sd, var_samp(amount) as v, median(amount) as m from sales", False),
    (
        "select product, approx_distinct(customer_id) as d, bool_or(amount > 99) as b from sales group by product",
        False,
    ),
    (
        "select grouping(product) as g, product, sum(amount) as s from sales group by rollup(product)",
        False,
    ),
    (
        "select product, array_agg(distinct day order by day) as days from sales where id < 100 group by product",
        False,
    ),
    (
        "select product, string_agg(cast(day as varchar), ',' order by day) as days from sales where id < 40 group by product",
        False,
    ),
    # joins of every kind
    (
        "select s.id, c.name from sales s join customers c on s.customer_id = c.customer_id where s.id < 300",
        False,
    ),
    (
        "select c.customer_id, count(s.id) as n from customers c left join sales s on s.customer_id = c.customer_id group by c.customer_id",
        False,
    ),
    (
        "select c.region, sum(s.amount) as total from sales s right join customers c on s.customer_id = c.customer_id group by c.region",
        False,
    ),
    (
        "select p.product, c.customer_id from products p full outer join (select distinct product, customer_id from sales where customer_id < 3) c on p.product = c.product",
        False,
    ),
    (
        "select c.customer_id from customers c where exists (select 1 from sales s where s.customer_id = c.customer_id and s.amount > 99)",
        False,
    ),
    (
        "select c.customer_id from customers c where not exists (select 1 from sales s where s.customer_id = c.customer_id)",
        False,
    ),
    (
        "select customer_id from customers where customer_id in (select customer_id from sales where day = 3)",
        False,
    ),
    (
        "select p.category, sum(s.amount * p.price) as revenue from sales s join products p using (product) group by p.category",
        False,
    ),
    (
        "select a.id, b.product as other from sales a cross join products b where a.id < 3 and b.price > 10",
        False,
    ),
    (
        "select s.id, k.holiday from sales s join calendar k on s.day = k.day and k.holiday where s.id < 500",
        False,
    ),
    # window functions
    (
        "select id, product, row_number() over (partition by product order by id) as rn from sales where id < 200",
        False,
    ),
    (
        "select id, sum(amount) over (order by id rows between 2 preceding and current row) as rolling from sales where id < 100",
        False,
    ),
    (
        "select product, day, rank() over (partition by product order by sum(amount) desc, day) as r from sales group by product, day",
        False,
    ),
    (
        "select id, lag(amount) over (order by id) as prev, lead(amount, 2) over (order by id) as next2 from sales where id < 60",
        False,
    ),
    (
        "select customer_id, ntile(4) over (order by customer_id) as quartile, first_value(name) over (partition by region order by customer_id) as first from customers",
        False,
    ),
    # sorts with limits
    ("select id, amount from sales order by amount desc, id limit 10", True),
    (
        "select product, sum(amount) as s from sales group by product order by s desc, product limit 3",
        True,
    ),
    ("select id from sales order by id desc limit 5 offset 10", True),
    ("select * from customers order by region nulls first, customer_id limit 12", True),
    # unions, set operations, DISTINCT
    (
        "select product from sales where day = 1 union select product from products where price > 5",
        False,
    ),
    ("select id from sales where id < 10 union all select id from sales_csv where id < 5", False),
    (
        "select customer_id from sales intersect select customer_id from customers where region = 'north'",
        False,
    ),
    ("select customer_id from customers except select customer_id from sales", False),
    ("select distinct product, day from sales where day < 4", False),
    # subqueries and CTEs
    (
        "select id, amount from sales where amount > (select avg(amount) from sales) and id < 200",
        False,
    ),
    (
        "select product, (select max(price) from products p where p.product = s.product) as price from sales s where id < 30",
        False,
    ),
    (
        "with daily as (select day, sum(amount) as total from sales group by day), best as (select max(total) as m from daily) select day from daily, best where total = m",
        False,
    ),
    (
        "with big as (select customer_id, sum(amount) as total from sales group by customer_id) select c.region, count(*) as n from big join customers c using (customer_id) where total > 2000 group by c.region",
        False,
    ),
    (
        "select * from (select product, count(*) as n from sales group by product) where n > 400",
        False,
    ),
    # types and functions
    (
        "select cast(amount as decimal(10, 2)) * 3 as d, date '2024-01-01' + cast(day as int) as dt from sales where id < 20",
        False,
    ),
    (
        "select named_struct('a', id, 'b', product) as st, make_array(id, day) as arr from sales where id < 5",
        False,
    ),
    (
        "select regexp_replace(product, 'p', 'product-') as r, length(product) as l, md5(product) as h from products",
        False,
    ),
]


@pytest.mark.parametrize(
    ("query", "ordered"), QUERIES, ids=[f"q{i:02d}" for i in range(len(QUERIES))]
)
def test_sql_matches_local(
    ctx: pickleball.SessionContext,
    local: datafusion.SessionContext,
    dataset: dict[str, Path],
    query: str,
    ordered: bool,
) -> None:
    register_all(ctx, dataset)
    register_all(local, dataset)
    assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table(), ordered)


def test_there_are_at_least_forty_queries() -> None:
    assert len(QUERIES) >= 40


def _dataframe_job(c: datafusion.SessionContext) -> datafusion.DataFrame:
    sales = c.table("sales")
    products = c.table("products")
    joined = sales.join(products, on="product", how="inner")
    return (
        joined.filter(col("quantity") > lit(2))
        .aggregate(
            [col("category")],
            [f.sum(col("amount") * col("price")).alias("revenue"), f.count(col("id")).alias("n")],
        )
        .sort(col("revenue").sort(ascending=False))
    )


def test_dataframe_api_matches_local(
    ctx: pickleball.SessionContext, local: datafusion.SessionContext, dataset: dict[str, Path]
) -> None:
    register_all(ctx, dataset)
    register_all(local, dataset)
    df = _dataframe_job(ctx)
    assert isinstance(df, pickleball.DataFrame)
    assert_same_result(df.to_arrow_table(), _dataframe_job(local).to_arrow_table(), ordered=True)


def test_every_executing_method_runs_and_agrees(
    ctx: pickleball.SessionContext,
    local: datafusion.SessionContext,
    dataset: dict[str, Path],
    tmp_path: Path,
) -> None:
    register_all(ctx, dataset)
    register_all(local, dataset)
    query = "select id, product, amount from sales where id < 25 order by id"
    df, ref = ctx.sql(query), local.sql(query)
    expected = ref.to_arrow_table()
    assert pa.Table.from_batches(df.collect()) == expected
    assert pa.Table.from_batches([b for part in df.collect_partitioned() for b in part]) == expected
    assert pa.Table.from_batches([b.to_pyarrow() for b in df.execute_stream()]) == expected
    assert pa.Table.from_batches([b.to_pyarrow() for b in df]) == expected
    assert pa.table(df) == expected  # Arrow PyCapsule stream export
    assert pa.RecordBatchReader.from_stream(df).read_all() == expected
    assert df.to_pylist() == ref.to_pylist()
    assert df.to_pydict() == ref.to_pydict()
    assert df.to_pandas().equals(ref.to_pandas())
    assert df.count() == ref.count() == 25
    assert df.collect_column("amount") == ref.select("amount").to_arrow_table().column(0)
    assert df.tail(3).to_pylist() == ref.tail(3).to_pylist()
    for writer, reader in [
        ("write_parquet", "read_parquet"),
        ("write_csv", "read_csv"),
        ("write_json", "read_json"),
    ]:
        out = tmp_path / writer
        getattr(df, writer)(str(out), **({"with_header": True} if writer == "write_csv" else {}))
        written = getattr(local, reader)(str(out)).sort(col("id")).to_arrow_table()
        assert written.column("id").to_pylist() == list(range(25))


def test_show_prints_rows_fetched_from_the_cluster(
    ctx: pickleball.SessionContext, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx.from_pydict({"word": ["alpha", "beta", "gamma"]}, name="words")
    ctx.sql("select word from words order by word").show()
    out = capsys.readouterr().out
    assert "alpha" in out and "gamma" in out
    assert "gamma" in repr(ctx.table("words"))


def test_in_memory_inputs_of_every_kind(
    ctx: pickleball.SessionContext, local: datafusion.SessionContext
) -> None:
    import pandas as pd

    batch = pa.record_batch({"a": [1, 2, 3], "b": ["x", "y", None]})
    for c in (ctx, local):
        c.register_record_batches("rb", [[batch], [batch]])
        c.register_batch("one", batch)
        c.from_pandas(pd.DataFrame({"a": [10, 20], "b": ["p", "q"]}), name="pdf")
        c.from_arrow(pa.table({"a": [7], "b": ["z"]}), name="arr")
        c.from_pylist([{"a": 5, "b": "w"}], name="pyl")
        c.create_dataframe([[batch]], name="cdf")
    query = (
        "select a, b from rb union all select a, b from one union all select a, b from pdf "
        "union all select a, b from arr union all select a, b from pyl union all select a, b from cdf"
    )
    assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())
    anonymous = ctx.read_batch(batch).filter(col("a") > lit(1))
    assert anonymous.to_pydict() == {"a": [2, 3], "b": ["y", None]}
    assert ctx.from_pydict({"n": [1, 2]}).cache().count() == 2


def test_result_types_match_local_even_where_flight_drops_them(
    ctx: pickleball.SessionContext, local: datafusion.SessionContext, tmp_path: Path
) -> None:
    # Arrow Flight's encoder sends LargeList as List; results are cast back to the plan's type.
    table = pa.table(
        {
            "tags": pa.array([["a", "b"], None, []], pa.large_list(pa.string())),
            "nested": pa.array([[[1]], [], None], pa.large_list(pa.large_list(pa.int64()))),
            "text": pa.array(["x", None, "z"], pa.large_string()),
        }
    )
    pq.write_table(table, tmp_path / "large.parquet")
    for c in (ctx, local):
        c.register_parquet("large", str(tmp_path / "large.parquet"))
        c.register_record_batches("large_mem", [table.to_batches()])
    for query in ("select * from large", "select * from large_mem"):
        assert_same_result(ctx.sql(query).to_arrow_table(), local.sql(query).to_arrow_table())


def test_a_sessions_batch_size_reaches_the_executors(cluster_url: str, tmp_path: Path) -> None:
    """DataFusion's default batch size, unless the session sets one (docs/OPERATIONS.md)."""
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"x": list(range(20_000))}), path)
    for settings, sizes in (
        ({}, [8192, 8192, 3616]),
        ({"datafusion.execution.batch_size": "5000"}, [5000] * 4),
    ):
        ctx = pickleball.connect(cluster_url, **settings)
        ctx.register_parquet("t", str(path))
        assert [b.num_rows for b in ctx.sql("select x + 1 as y from t").collect()] == sizes
