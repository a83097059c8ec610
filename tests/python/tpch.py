"""A small, deterministic TPC-H-like data set and the 22 TPC-H queries, for correctness tests.

The end-to-end tests run every TPC-H query on a Ballista cluster and compare the result with the
same query on a plain local ``datafusion.SessionContext``. That needs data whose shape resembles
TPC-H closely enough for all 22 queries to be meaningful (same tables, column names and types,
value domains the query predicates select on, key relationships the joins rely on), but it does
not need the official generator.

This module is therefore **not** a certified ``dbgen``: values are drawn with ``random.Random``
from a fixed seed, following the spirit of the TPC-H specification (clause 4.2.3) rather than its
letter. Row counts scale like the specification's; a few orders are deliberately made large so
that Q18 (``sum(l_quantity) > 300``) selects rows even at tiny scale factors. The output is
byte-for-byte reproducible for a given scale and seed.

The queries in :data:`QUERIES` follow the specification's query text with its validation
substitution parameters, written in SQL that Apache DataFusion accepts (Q15's view is a CTE).
"""

from __future__ import annotations

import datetime
import os
import pathlib
import random
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["DEFAULT_SEED", "QUERIES", "TABLES", "generate", "register"]

DEFAULT_SEED = 8
"""Seed of the default data set; each table derives its own generator from it.

Chosen so that, at scale 0.01, every query returns at least one row and Q17 and Q19 return a
non-null sum (with other seeds Q17, Q19 or Q20 come out empty about a third of the time, since
they select only a handful of rows at that scale).
"""

TABLES: tuple[str, ...] = (
    "region",
    "nation",
    "supplier",
    "customer",
    "part",
    "partsupp",
    "orders",
    "lineitem",
)
"""The eight TPC-H tables, in dependency order."""

MONEY = pa.decimal128(15, 2)
"""Type of money, quantity, discount and tax columns."""

_EPOCH = datetime.date(1970, 1, 1)


def _days(year: int, month: int, day: int) -> int:
    """Days since the Unix epoch, the physical value of a ``date32``."""
    return (datetime.date(year, month, day) - _EPOCH).days


START_DATE = _days(1992, 1, 1)
CURRENT_DATE = _days(1995, 6, 17)
END_DATE = _days(1998, 12, 31)

REGIONS: tuple[str, ...] = ("AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST")

NATIONS: tuple[tuple[str, int], ...] = (
    ("ALGERIA", 0),
    ("ARGENTINA", 1),
    ("BRAZIL", 1),
    ("CANADA", 1),
    ("EGYPT", 4),
    ("ETHIOPIA", 0),
    ("FRANCE", 3),
    ("GERMANY", 3),
    ("INDIA", 2),
    ("INDONESIA", 2),
    ("IRAN", 4),
    ("IRAQ", 4),
    ("JAPAN", 2),
    ("JORDAN", 4),
    ("KENYA", 0),
    ("MOROCCO", 0),
    ("MOZAMBIQUE", 0),
    ("PERU", 1),
    ("CHINA", 2),
    ("ROMANIA", 3),
    ("SAUDI ARABIA", 4),
    ("VIETNAM", 2),
    ("RUSSIA", 3),
    ("UNITED KINGDOM", 3),
    ("UNITED STATES", 1),
)
"""Nation names and the key of their region; a nation's key is its index."""

_COLOR_TEXT = """
    almond antique aquamarine azure beige bisque black blanched blue blush brown burlywood
    burnished chartreuse chiffon chocolate coral cornflower cornsilk cream cyan dark deep dim
    dodger drab firebrick floral forest frosted gainsboro ghost goldenrod green grey honeydew
    hot indian ivory khaki lace lavender lawn lemon light lime linen magenta maroon medium
    metallic midnight mint misty moccasin navajo navy olive orange orchid pale papaya peach
    peru pink plum powder puff purple red rose rosy royal saddle salmon sandy seashell sienna
    sky slate smoke snow spring steel tan thistle tomato turquoise violet wheat white yellow
"""
COLORS: tuple[str, ...] = tuple(_COLOR_TEXT.split())
"""Words of ``p_name``."""

TYPE_SIZES: tuple[str, ...] = ("STANDARD", "SMALL", "MEDIUM", "LARGE", "ECONOMY", "PROMO")
TYPE_FINISHES: tuple[str, ...] = ("ANODIZED", "BURNISHED", "PLATED", "POLISHED", "BRUSHED")
TYPE_METALS: tuple[str, ...] = ("TIN", "NICKEL", "BRASS", "STEEL", "COPPER")
_TYPE_WORDS = (TYPE_SIZES, TYPE_FINISHES, TYPE_METALS)
CONTAINER_SIZES: tuple[str, ...] = ("SM", "LG", "MED", "JUMBO", "WRAP")
CONTAINER_KINDS: tuple[str, ...] = ("CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM")
SEGMENTS: tuple[str, ...] = ("AUTOMOBILE", "BUILDING", "FURNITURE", "MACHINERY", "HOUSEHOLD")
PRIORITIES: tuple[str, ...] = ("1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW")
SHIP_INSTRUCTIONS: tuple[str, ...] = (
    "DELIVER IN PERSON",
    "COLLECT COD",
    "NONE",
    "TAKE BACK RETURN",
)
SHIP_MODES: tuple[str, ...] = ("REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB")

_WORD_TEXT = """
    foxes ideas theodolites pinto beans instructions dependencies excuses platelets asymptotes
    courts dolphins multipliers sauternes warthogs frets dinos attainments somas patterns
    forges braids frays warhorses dugouts epitaphs pearls tithes waters orbits gifts sheaves
    depths sentiments decoys realms pains grouches escapades packages requests accounts
    deposits sleep wake are cajole haggle nag use boost affix detect integrate maintain nod
    was lose sublate solve thrash promise engage hinder print breach eat grow impress mold
    poach serve run dazzle snooze doze unwind kindle play hang believe doubt furious sly
    careful blithe quick fluffy slow quiet ruthless thin close dogged daring brave stealthy
    permanent enticing idle busy regular final ironic even bold silent pending special
    unusual express furiously slyly carefully blithely quickly fluffily slowly quietly
    ruthlessly thinly closely doggedly daringly bravely stealthily permanently enticingly
    idly busily regularly finally ironically evenly boldly silently about above according
    across after against along among around at atop before behind beneath beside besides
    between beyond by despite during except for from in inside instead of into near of on
    outside over past since through throughout to toward under until up upon without with
    within the
"""
_WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())
"""Vocabulary of the free-text comment columns."""

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,. "


def _comment(rng: random.Random, low: int, high: int) -> str:
    """A random sentence of ``low`` to ``high`` words."""
    return " ".join(rng.choices(_WORDS, k=rng.randint(low, high)))


def _address(rng: random.Random) -> str:
    """A random string of 10 to 40 characters, like the specification's V-string."""
    return "".join(rng.choices(_ALNUM, k=rng.randint(10, 40))).strip() or "x"


def _phone(rng: random.Random, nationkey: int) -> str:
    """A phone number whose country code is ``nationkey + 10``."""
    return (
        f"{nationkey + 10}-{rng.randint(100, 999)}-{rng.randint(100, 999)}"
        f"-{rng.randint(1000, 9999)}"
    )


def _money(cents: Sequence[int]) -> pa.Array:
    """A ``decimal128(15, 2)`` array from integer hundredths."""
    return pa.array([Decimal(c).scaleb(-2) for c in cents], type=MONEY)


def _dates(days: Sequence[int]) -> pa.Array:
    """A ``date32`` array from days since the epoch."""
    return pa.array(days, type=pa.int32()).cast(pa.date32())


def _nations(rng: random.Random, count: int) -> list[int]:
    """Nation keys for ``count`` rows: every nation equally often (give or take one), shuffled.

    Drawing each row's nation independently would leave some nations without suppliers at
    small scale factors, and several queries select on a single nation.
    """
    keys = [i % len(NATIONS) for i in range(count)]
    rng.shuffle(keys)
    return keys


def _retail_cents(partkey: int) -> int:
    """``p_retailprice`` in hundredths, the specification's formula."""
    return 90000 + ((partkey // 10) % 20001) + 100 * (partkey % 1000)


def _part_suppliers(partkey: int, suppliers: int) -> list[int]:
    """The (up to) four distinct suppliers of a part, the specification's formula.

    At very small scale factors the formula can repeat a supplier; the repeats are replaced by
    the next unused keys so that ``(ps_partkey, ps_suppkey)`` stays a key.
    """
    wanted = min(4, suppliers)
    step = suppliers // 4 + (partkey - 1) // suppliers
    keys: list[int] = []
    for i in range(4):
        key = (partkey + i * step) % suppliers + 1
        while key in keys:
            key = key % suppliers + 1
        keys.append(key)
        if len(keys) == wanted:
            break
    return keys


def _order_key(index: int) -> int:
    """Sparse order keys as in the specification: 8 used keys out of each 32."""
    return (index // 8) * 32 + (index % 8) + 1


def _counts(scale: float) -> dict[str, int]:
    """Row counts of the base tables at ``scale``."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, not {scale}")
    return {
        "supplier": max(4, round(10_000 * scale)),
        "customer": max(3, round(150_000 * scale)),
        "part": max(1, round(200_000 * scale)),
        "orders": max(1, round(1_500_000 * scale)),
    }


def _region(rng: random.Random) -> pa.Table:
    return pa.table(
        {
            "r_regionkey": pa.array(range(len(REGIONS)), pa.int64()),
            "r_name": pa.array(REGIONS, pa.string()),
            "r_comment": pa.array([_comment(rng, 5, 15) for _ in REGIONS], pa.string()),
        }
    )


def _nation(rng: random.Random) -> pa.Table:
    return pa.table(
        {
            "n_nationkey": pa.array(range(len(NATIONS)), pa.int64()),
            "n_name": pa.array([name for name, _ in NATIONS], pa.string()),
            "n_regionkey": pa.array([region for _, region in NATIONS], pa.int64()),
            "n_comment": pa.array([_comment(rng, 5, 15) for _ in NATIONS], pa.string()),
        }
    )


def _supplier(rng: random.Random, count: int) -> pa.Table:
    nations = _nations(rng, count)
    comments = [_comment(rng, 6, 16) for _ in range(count)]
    # The specification plants "Customer ... Complaints" and "Customer ... Recommends" in a few
    # supplier comments (Q16 excludes the former); plant each in about 1 % of the rows, at least
    # one, so that Q16's exclusion has something to exclude at small scale factors.
    planted = max(1, round(count * 0.01))
    rows = rng.sample(range(count), min(count, 2 * planted))
    for n, i in enumerate(rows):
        word = "Complaints" if n % 2 == 0 else "Recommends"
        filler = rng.choices(_WORDS, k=rng.randint(0, 2))
        comments[i] = " ".join([_comment(rng, 1, 3), "Customer", *filler, word])
    return pa.table(
        {
            "s_suppkey": pa.array(range(1, count + 1), pa.int64()),
            "s_name": pa.array([f"Supplier#{k:09d}" for k in range(1, count + 1)], pa.string()),
            "s_address": pa.array([_address(rng) for _ in range(count)], pa.string()),
            "s_nationkey": pa.array(nations, pa.int64()),
            "s_phone": pa.array([_phone(rng, n) for n in nations], pa.string()),
            "s_acctbal": _money([rng.randint(-99_999, 999_999) for _ in range(count)]),
            "s_comment": pa.array(comments, pa.string()),
        }
    )


def _customer(rng: random.Random, count: int) -> pa.Table:
    nations = _nations(rng, count)
    return pa.table(
        {
            "c_custkey": pa.array(range(1, count + 1), pa.int64()),
            "c_name": pa.array([f"Customer#{k:09d}" for k in range(1, count + 1)], pa.string()),
            "c_address": pa.array([_address(rng) for _ in range(count)], pa.string()),
            "c_nationkey": pa.array(nations, pa.int64()),
            "c_phone": pa.array([_phone(rng, n) for n in nations], pa.string()),
            "c_acctbal": _money([rng.randint(-99_999, 999_999) for _ in range(count)]),
            "c_mktsegment": pa.array([rng.choice(SEGMENTS) for _ in range(count)], pa.string()),
            "c_comment": pa.array([_comment(rng, 5, 15) for _ in range(count)], pa.string()),
        }
    )


def _part(rng: random.Random, count: int) -> pa.Table:
    keys = range(1, count + 1)
    mfgrs = [rng.randint(1, 5) for _ in keys]
    return pa.table(
        {
            "p_partkey": pa.array(keys, pa.int64()),
            "p_name": pa.array([" ".join(rng.sample(COLORS, 5)) for _ in keys], pa.string()),
            "p_mfgr": pa.array([f"Manufacturer#{m}" for m in mfgrs], pa.string()),
            "p_brand": pa.array([f"Brand#{m}{rng.randint(1, 5)}" for m in mfgrs], pa.string()),
            "p_type": pa.array(
                [" ".join(rng.choice(words) for words in _TYPE_WORDS) for _ in keys],
                pa.string(),
            ),
            "p_size": pa.array([rng.randint(1, 50) for _ in keys], pa.int32()),
            "p_container": pa.array(
                [f"{rng.choice(CONTAINER_SIZES)} {rng.choice(CONTAINER_KINDS)}" for _ in keys],
                pa.string(),
            ),
            "p_retailprice": _money([_retail_cents(k) for k in keys]),
            "p_comment": pa.array([_comment(rng, 1, 4) for _ in keys], pa.string()),
        }
    )


def _partsupp(rng: random.Random, parts: int, suppliers: int) -> pa.Table:
    partkeys: list[int] = []
    suppkeys: list[int] = []
    for partkey in range(1, parts + 1):
        for suppkey in _part_suppliers(partkey, suppliers):
            partkeys.append(partkey)
            suppkeys.append(suppkey)
    rows = len(partkeys)
    return pa.table(
        {
            "ps_partkey": pa.array(partkeys, pa.int64()),
            "ps_suppkey": pa.array(suppkeys, pa.int64()),
            "ps_availqty": pa.array([rng.randint(1, 9999) for _ in range(rows)], pa.int32()),
            "ps_supplycost": _money([rng.randint(100, 100_000) for _ in range(rows)]),
            "ps_comment": pa.array([_comment(rng, 10, 30) for _ in range(rows)], pa.string()),
        }
    )


def _orders_and_lineitem(
    rng: random.Random, orders: int, customers: int, parts: int, suppliers: int
) -> tuple[pa.Table, pa.Table]:
    """Both tables at once: an order's status and total price derive from its lines."""
    order_cols: dict[str, list[Any]] = {
        name: []
        for name in (
            "o_orderkey",
            "o_custkey",
            "o_orderstatus",
            "o_totalprice",
            "o_orderdate",
            "o_orderpriority",
            "o_clerk",
            "o_shippriority",
            "o_comment",
        )
    }
    line_cols: dict[str, list[Any]] = {
        name: []
        for name in (
            "l_orderkey",
            "l_partkey",
            "l_suppkey",
            "l_linenumber",
            "l_quantity",
            "l_extendedprice",
            "l_discount",
            "l_tax",
            "l_returnflag",
            "l_linestatus",
            "l_shipdate",
            "l_commitdate",
            "l_receiptdate",
            "l_shipinstruct",
            "l_shipmode",
            "l_comment",
        )
    }
    clerks = max(1, round(orders / 1500))
    # Customers whose key is a multiple of 3 place no orders (Q13 and Q22 count them).
    buyers = [k for k in range(1, customers + 1) if k % 3 != 0] or [1]
    supplier_cache: dict[int, list[int]] = {}
    for index in range(orders):
        orderkey = _order_key(index)
        orderdate = rng.randint(START_DATE, END_DATE - 151)
        # One order in 400 is large: seven lines of 40..50 units (Q18 selects these).
        large = index % 400 == 199
        lines = 7 if large else rng.randint(1, 7)
        total = 0
        statuses: set[str] = set()
        for linenumber in range(1, lines + 1):
            partkey = rng.randint(1, parts)
            part_suppliers = supplier_cache.get(partkey)
            if part_suppliers is None:
                part_suppliers = _part_suppliers(partkey, suppliers)
                supplier_cache[partkey] = part_suppliers
            quantity = rng.randint(40, 50) if large else rng.randint(1, 50)
            extended = quantity * _retail_cents(partkey)
            discount = rng.randint(0, 10)
            tax = rng.randint(0, 8)
            shipdate = orderdate + rng.randint(1, 121)
            commitdate = orderdate + rng.randint(30, 90)
            receiptdate = shipdate + rng.randint(1, 30)
            returnflag = rng.choice("RA") if receiptdate <= CURRENT_DATE else "N"
            linestatus = "O" if shipdate > CURRENT_DATE else "F"
            statuses.add(linestatus)
            total += extended * (100 - discount) * (100 + tax)
            line_cols["l_orderkey"].append(orderkey)
            line_cols["l_partkey"].append(partkey)
            line_cols["l_suppkey"].append(rng.choice(part_suppliers))
            line_cols["l_linenumber"].append(linenumber)
            line_cols["l_quantity"].append(quantity * 100)
            line_cols["l_extendedprice"].append(extended)
            line_cols["l_discount"].append(discount)
            line_cols["l_tax"].append(tax)
            line_cols["l_returnflag"].append(returnflag)
            line_cols["l_linestatus"].append(linestatus)
            line_cols["l_shipdate"].append(shipdate)
            line_cols["l_commitdate"].append(commitdate)
            line_cols["l_receiptdate"].append(receiptdate)
            line_cols["l_shipinstruct"].append(rng.choice(SHIP_INSTRUCTIONS))
            line_cols["l_shipmode"].append(rng.choice(SHIP_MODES))
            line_cols["l_comment"].append(_comment(rng, 2, 6))
        status = statuses.pop() if len(statuses) == 1 else "P"
        order_cols["o_orderkey"].append(orderkey)
        order_cols["o_custkey"].append(rng.choice(buyers))
        order_cols["o_orderstatus"].append(status)
        order_cols["o_totalprice"].append((total + 5000) // 10_000)
        order_cols["o_orderdate"].append(orderdate)
        order_cols["o_orderpriority"].append(rng.choice(PRIORITIES))
        order_cols["o_clerk"].append(f"Clerk#{rng.randint(1, clerks):09d}")
        order_cols["o_shippriority"].append(0)
        comment = _comment(rng, 4, 12)
        if rng.random() < 0.01:
            # Q13 leaves out orders whose comment matches '%special%requests%'.
            comment = f"{comment} special {_comment(rng, 0, 2)} requests"
        order_cols["o_comment"].append(comment)

    converters: dict[str, Callable[[list[Any]], pa.Array]] = {
        "o_orderkey": lambda v: pa.array(v, pa.int64()),
        "o_custkey": lambda v: pa.array(v, pa.int64()),
        "o_totalprice": _money,
        "o_orderdate": _dates,
        "o_shippriority": lambda v: pa.array(v, pa.int32()),
        "l_orderkey": lambda v: pa.array(v, pa.int64()),
        "l_partkey": lambda v: pa.array(v, pa.int64()),
        "l_suppkey": lambda v: pa.array(v, pa.int64()),
        "l_linenumber": lambda v: pa.array(v, pa.int32()),
        "l_quantity": _money,
        "l_extendedprice": _money,
        "l_discount": _money,
        "l_tax": _money,
        "l_shipdate": _dates,
        "l_commitdate": _dates,
        "l_receiptdate": _dates,
    }

    def build(columns: dict[str, list[Any]]) -> pa.Table:
        return pa.table(
            {
                name: converters.get(name, lambda v: pa.array(v, pa.string()))(values)
                for name, values in columns.items()
            }
        )

    return build(order_cols), build(line_cols)


def _write(table: pa.Table, path: pathlib.Path) -> None:
    """Write atomically, so that a concurrent reader never sees a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def generate(
    directory: pathlib.Path, scale: float = 0.01, *, seed: int = DEFAULT_SEED
) -> dict[str, pathlib.Path]:
    """Write the eight tables as ``<directory>/<table>.parquet``; return their paths by name.

    Nothing is written when all eight files already exist (they are assumed to come from an
    earlier call with the same arguments). At ``scale=0.01`` the data set has about 60,000
    line items and takes a couple of seconds to generate.
    """
    directory = pathlib.Path(directory)
    paths = {name: directory / f"{name}.parquet" for name in TABLES}
    if all(path.exists() for path in paths.values()):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    counts = _counts(scale)

    def rng(table: str) -> random.Random:
        return random.Random(f"{seed}/{table}")

    orders, lineitem = _orders_and_lineitem(
        rng("orders"), counts["orders"], counts["customer"], counts["part"], counts["supplier"]
    )
    tables = {
        "region": _region(rng("region")),
        "nation": _nation(rng("nation")),
        "supplier": _supplier(rng("supplier"), counts["supplier"]),
        "customer": _customer(rng("customer"), counts["customer"]),
        "part": _part(rng("part"), counts["part"]),
        "partsupp": _partsupp(rng("partsupp"), counts["part"], counts["supplier"]),
        "orders": orders,
        "lineitem": lineitem,
    }
    for name in TABLES:
        _write(tables[name], paths[name])
    return paths


def register(ctx: Any, paths: dict[str, pathlib.Path]) -> None:
    """Register each table's Parquet file under its name on ``ctx`` (any SessionContext)."""
    for name, path in paths.items():
        ctx.register_parquet(name, str(path))


QUERIES: dict[int, str] = {
    1: """
select
    l_returnflag,
    l_linestatus,
    sum(l_quantity) as sum_qty,
    sum(l_extendedprice) as sum_base_price,
    sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
    sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge,
    avg(l_quantity) as avg_qty,
    avg(l_extendedprice) as avg_price,
    avg(l_discount) as avg_disc,
    count(*) as count_order
from
    lineitem
where
    l_shipdate <= date '1998-12-01' - interval '90' day
group by
    l_returnflag,
    l_linestatus
order by
    l_returnflag,
    l_linestatus
""",
    2: """
select
    s_acctbal,
    s_name,
    n_name,
    p_partkey,
    p_mfgr,
    s_address,
    s_phone,
    s_comment
from
    part,
    supplier,
    partsupp,
    nation,
    region
where
    p_partkey = ps_partkey
    and s_suppkey = ps_suppkey
    and p_size = 15
    and p_type like '%BRASS'
    and s_nationkey = n_nationkey
    and n_regionkey = r_regionkey
    and r_name = 'EUROPE'
    and ps_supplycost = (
        select
            min(ps_supplycost)
        from
            partsupp,
            supplier,
            nation,
            region
        where
            p_partkey = ps_partkey
            and s_suppkey = ps_suppkey
            and s_nationkey = n_nationkey
            and n_regionkey = r_regionkey
            and r_name = 'EUROPE'
    )
order by
    s_acctbal desc,
    n_name,
    s_name,
    p_partkey
limit 100
""",
    3: """
select
    l_orderkey,
    sum(l_extendedprice * (1 - l_discount)) as revenue,
    o_orderdate,
    o_shippriority
from
    customer,
    orders,
    lineitem
where
    c_mktsegment = 'BUILDING'
    and c_custkey = o_custkey
    and l_orderkey = o_orderkey
    and o_orderdate < date '1995-03-15'
    and l_shipdate > date '1995-03-15'
group by
    l_orderkey,
    o_orderdate,
    o_shippriority
order by
    revenue desc,
    o_orderdate
limit 10
""",
    4: """
select
    o_orderpriority,
    count(*) as order_count
from
    orders
where
    o_orderdate >= date '1993-07-01'
    and o_orderdate < date '1993-07-01' + interval '3' month
    and exists (
        select
            *
        from
            lineitem
        where
            l_orderkey = o_orderkey
            and l_commitdate < l_receiptdate
    )
group by
    o_orderpriority
order by
    o_orderpriority
""",
    5: """
select
    n_name,
    sum(l_extendedprice * (1 - l_discount)) as revenue
from
    customer,
    orders,
    lineitem,
    supplier,
    nation,
    region
where
    c_custkey = o_custkey
    and l_orderkey = o_orderkey
    and l_suppkey = s_suppkey
    and c_nationkey = s_nationkey
    and s_nationkey = n_nationkey
    and n_regionkey = r_regionkey
    and r_name = 'ASIA'
    and o_orderdate >= date '1994-01-01'
    and o_orderdate < date '1994-01-01' + interval '1' year
group by
    n_name
order by
    revenue desc
""",
    # The specification writes the discount range as 0.06 - 0.01 .. 0.06 + 0.01; the computed
    # bounds are written out so that no floating-point rounding moves the 0.07 boundary.
    6: """
select
    sum(l_extendedprice * l_discount) as revenue
from
    lineitem
where
    l_shipdate >= date '1994-01-01'
    and l_shipdate < date '1994-01-01' + interval '1' year
    and l_discount between 0.05 and 0.07
    and l_quantity < 24
""",
    7: """
select
    supp_nation,
    cust_nation,
    l_year,
    sum(volume) as revenue
from
    (
        select
            n1.n_name as supp_nation,
            n2.n_name as cust_nation,
            extract(year from l_shipdate) as l_year,
            l_extendedprice * (1 - l_discount) as volume
        from
            supplier,
            lineitem,
            orders,
            customer,
            nation n1,
            nation n2
        where
            s_suppkey = l_suppkey
            and o_orderkey = l_orderkey
            and c_custkey = o_custkey
            and s_nationkey = n1.n_nationkey
            and c_nationkey = n2.n_nationkey
            and (
                (n1.n_name = 'FRANCE' and n2.n_name = 'GERMANY')
                or (n1.n_name = 'GERMANY' and n2.n_name = 'FRANCE')
            )
            and l_shipdate between date '1995-01-01' and date '1996-12-31'
    ) as shipping
group by
    supp_nation,
    cust_nation,
    l_year
order by
    supp_nation,
    cust_nation,
    l_year
""",
    8: """
select
    o_year,
    sum(case when nation = 'BRAZIL' then volume else 0 end) / sum(volume) as mkt_share
from
    (
        select
            extract(year from o_orderdate) as o_year,
            l_extendedprice * (1 - l_discount) as volume,
            n2.n_name as nation
        from
            part,
            supplier,
            lineitem,
            orders,
            customer,
            nation n1,
            nation n2,
            region
        where
            p_partkey = l_partkey
            and s_suppkey = l_suppkey
            and l_orderkey = o_orderkey
            and o_custkey = c_custkey
            and c_nationkey = n1.n_nationkey
            and n1.n_regionkey = r_regionkey
            and r_name = 'AMERICA'
            and s_nationkey = n2.n_nationkey
            and o_orderdate between date '1995-01-01' and date '1996-12-31'
            and p_type = 'ECONOMY ANODIZED STEEL'
    ) as all_nations
group by
    o_year
order by
    o_year
""",
    9: """
select
    nation,
    o_year,
    sum(amount) as sum_profit
from
    (
        select
            n_name as nation,
            extract(year from o_orderdate) as o_year,
            l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity as amount
        from
            part,
            supplier,
            lineitem,
            partsupp,
            orders,
            nation
        where
            s_suppkey = l_suppkey
            and ps_suppkey = l_suppkey
            and ps_partkey = l_partkey
            and p_partkey = l_partkey
            and o_orderkey = l_orderkey
            and s_nationkey = n_nationkey
            and p_name like '%green%'
    ) as profit
group by
    nation,
    o_year
order by
    nation,
    o_year desc
""",
    10: """
select
    c_custkey,
    c_name,
    sum(l_extendedprice * (1 - l_discount)) as revenue,
    c_acctbal,
    n_name,
    c_address,
    c_phone,
    c_comment
from
    customer,
    orders,
    lineitem,
    nation
where
    c_custkey = o_custkey
    and l_orderkey = o_orderkey
    and o_orderdate >= date '1993-10-01'
    and o_orderdate < date '1993-10-01' + interval '3' month
    and l_returnflag = 'R'
    and c_nationkey = n_nationkey
group by
    c_custkey,
    c_name,
    c_acctbal,
    c_phone,
    n_name,
    c_address,
    c_comment
order by
    revenue desc
limit 20
""",
    11: """
select
    ps_partkey,
    sum(ps_supplycost * ps_availqty) as value
from
    partsupp,
    supplier,
    nation
where
    ps_suppkey = s_suppkey
    and s_nationkey = n_nationkey
    and n_name = 'GERMANY'
group by
    ps_partkey
having
    sum(ps_supplycost * ps_availqty) > (
        select
            sum(ps_supplycost * ps_availqty) * 0.0001
        from
            partsupp,
            supplier,
            nation
        where
            ps_suppkey = s_suppkey
            and s_nationkey = n_nationkey
            and n_name = 'GERMANY'
    )
order by
    value desc
""",
    12: """
select
    l_shipmode,
    sum(
        case
            when o_orderpriority = '1-URGENT' or o_orderpriority = '2-HIGH' then 1
            else 0
        end
    ) as high_line_count,
    sum(
        case
            when o_orderpriority <> '1-URGENT' and o_orderpriority <> '2-HIGH' then 1
            else 0
        end
    ) as low_line_count
from
    orders,
    lineitem
where
    o_orderkey = l_orderkey
    and l_shipmode in ('MAIL', 'SHIP')
    and l_commitdate < l_receiptdate
    and l_shipdate < l_commitdate
    and l_receiptdate >= date '1994-01-01'
    and l_receiptdate < date '1994-01-01' + interval '1' year
group by
    l_shipmode
order by
    l_shipmode
""",
    13: """
select
    c_count,
    count(*) as custdist
from
    (
        select
            c_custkey,
            count(o_orderkey) as c_count
        from
            customer
            left outer join orders on
                c_custkey = o_custkey
                and o_comment not like '%special%requests%'
        group by
            c_custkey
    ) as c_orders
group by
    c_count
order by
    custdist desc,
    c_count desc
""",
    14: """
select
    100.00 * sum(
        case
            when p_type like 'PROMO%' then l_extendedprice * (1 - l_discount)
            else 0
        end
    ) / sum(l_extendedprice * (1 - l_discount)) as promo_revenue
from
    lineitem,
    part
where
    l_partkey = p_partkey
    and l_shipdate >= date '1995-09-01'
    and l_shipdate < date '1995-09-01' + interval '1' month
""",
    15: """
with revenue0 as (
    select
        l_suppkey as supplier_no,
        sum(l_extendedprice * (1 - l_discount)) as total_revenue
    from
        lineitem
    where
        l_shipdate >= date '1996-01-01'
        and l_shipdate < date '1996-01-01' + interval '3' month
    group by
        l_suppkey
)
select
    s_suppkey,
    s_name,
    s_address,
    s_phone,
    total_revenue
from
    supplier,
    revenue0
where
    s_suppkey = supplier_no
    and total_revenue = (
        select
            max(total_revenue)
        from
            revenue0
    )
order by
    s_suppkey
""",
    16: """
select
    p_brand,
    p_type,
    p_size,
    count(distinct ps_suppkey) as supplier_cnt
from
    partsupp,
    part
where
    p_partkey = ps_partkey
    and p_brand <> 'Brand#45'
    and p_type not like 'MEDIUM POLISHED%'
    and p_size in (49, 14, 23, 45, 19, 3, 36, 9)
    and ps_suppkey not in (
        select
            s_suppkey
        from
            supplier
        where
            s_comment like '%Customer%Complaints%'
    )
group by
    p_brand,
    p_type,
    p_size
order by
    supplier_cnt desc,
    p_brand,
    p_type,
    p_size
""",
    17: """
select
    sum(l_extendedprice) / 7.0 as avg_yearly
from
    lineitem,
    part
where
    p_partkey = l_partkey
    and p_brand = 'Brand#23'
    and p_container = 'MED BOX'
    and l_quantity < (
        select
            0.2 * avg(l_quantity)
        from
            lineitem
        where
            l_partkey = p_partkey
    )
""",
    18: """
select
    c_name,
    c_custkey,
    o_orderkey,
    o_orderdate,
    o_totalprice,
    sum(l_quantity) as sum_quantity
from
    customer,
    orders,
    lineitem
where
    o_orderkey in (
        select
            l_orderkey
        from
            lineitem
        group by
            l_orderkey
        having
            sum(l_quantity) > 300
    )
    and c_custkey = o_custkey
    and o_orderkey = l_orderkey
group by
    c_name,
    c_custkey,
    o_orderkey,
    o_orderdate,
    o_totalprice
order by
    o_totalprice desc,
    o_orderdate
limit 100
""",
    19: """
select
    sum(l_extendedprice * (1 - l_discount)) as revenue
from
    lineitem,
    part
where
    (
        p_partkey = l_partkey
        and p_brand = 'Brand#12'
        and p_container in ('SM CASE', 'SM BOX', 'SM PACK', 'SM PKG')
        and l_quantity >= 1 and l_quantity <= 1 + 10
        and p_size between 1 and 5
        and l_shipmode in ('AIR', 'AIR REG')
        and l_shipinstruct = 'DELIVER IN PERSON'
    )
    or (
        p_partkey = l_partkey
        and p_brand = 'Brand#23'
        and p_container in ('MED BAG', 'MED BOX', 'MED PKG', 'MED PACK')
        and l_quantity >= 10 and l_quantity <= 10 + 10
        and p_size between 1 and 10
        and l_shipmode in ('AIR', 'AIR REG')
        and l_shipinstruct = 'DELIVER IN PERSON'
    )
    or (
        p_partkey = l_partkey
        and p_brand = 'Brand#34'
        and p_container in ('LG CASE', 'LG BOX', 'LG PACK', 'LG PKG')
        and l_quantity >= 20 and l_quantity <= 20 + 10
        and p_size between 1 and 15
        and l_shipmode in ('AIR', 'AIR REG')
        and l_shipinstruct = 'DELIVER IN PERSON'
    )
""",
    20: """
select
    s_name,
    s_address
from
    supplier,
    nation
where
    s_suppkey in (
        select
            ps_suppkey
        from
            partsupp
        where
            ps_partkey in (
                select
                    p_partkey
                from
                    part
                where
                    p_name like 'forest%'
            )
            and ps_availqty > (
                select
                    0.5 * sum(l_quantity)
                from
                    lineitem
                where
                    l_partkey = ps_partkey
                    and l_suppkey = ps_suppkey
                    and l_shipdate >= date '1994-01-01'
                    and l_shipdate < date '1994-01-01' + interval '1' year
            )
    )
    and s_nationkey = n_nationkey
    and n_name = 'CANADA'
order by
    s_name
""",
    21: """
select
    s_name,
    count(*) as numwait
from
    supplier,
    lineitem l1,
    orders,
    nation
where
    s_suppkey = l1.l_suppkey
    and o_orderkey = l1.l_orderkey
    and o_orderstatus = 'F'
    and l1.l_receiptdate > l1.l_commitdate
    and exists (
        select
            *
        from
            lineitem l2
        where
            l2.l_orderkey = l1.l_orderkey
            and l2.l_suppkey <> l1.l_suppkey
    )
    and not exists (
        select
            *
        from
            lineitem l3
        where
            l3.l_orderkey = l1.l_orderkey
            and l3.l_suppkey <> l1.l_suppkey
            and l3.l_receiptdate > l3.l_commitdate
    )
    and s_nationkey = n_nationkey
    and n_name = 'SAUDI ARABIA'
group by
    s_name
order by
    numwait desc,
    s_name
limit 100
""",
    22: """
select
    cntrycode,
    count(*) as numcust,
    sum(c_acctbal) as totacctbal
from
    (
        select
            substring(c_phone from 1 for 2) as cntrycode,
            c_acctbal
        from
            customer
        where
            substring(c_phone from 1 for 2) in ('13', '31', '23', '29', '30', '18', '17')
            and c_acctbal > (
                select
                    avg(c_acctbal)
                from
                    customer
                where
                    c_acctbal > 0.00
                    and substring(c_phone from 1 for 2)
                        in ('13', '31', '23', '29', '30', '18', '17')
            )
            and not exists (
                select
                    *
                from
                    orders
                where
                    o_custkey = c_custkey
            )
    ) as custsale
group by
    cntrycode
order by
    cntrycode
""",
}
"""The 22 TPC-H queries with the specification's validation parameters, keyed by number."""
