"""Run by Python 3.12 (a venv with the stock datafusion wheel and cloudpickle, no pickleball
build): pickles a DataFrame with a Python UDF the way pickleball does, for the cross-version
test. pickleball's compiled extension exists only for 3.13 here, so its pure-Python transfer
module is loaded on its own, with the one constant it needs from the extension.

Usage: python3.12 py312_pickle.py <pickleball package dir> <cluster url> <output file>
"""

import pickle
import sys
import types


class PickledDataFrame:
    """Pickles exactly as pickleball.DataFrame.__reduce__ does."""

    def __init__(self, reduce: tuple) -> None:
        self.reduce = reduce

    def __reduce__(self) -> tuple:
        return self.reduce


def main() -> None:
    package_dir, url, output = sys.argv[1:4]
    package = types.ModuleType("pickleball")
    package.__path__ = [package_dir]
    sys.modules["pickleball"] = package
    sys.modules["pickleball._internal"] = types.SimpleNamespace(
        MEMORY_PLACEHOLDER_ROOT="__pickleball_memory__"
    )

    import datafusion
    import pyarrow as pa
    import pyarrow.compute as pc

    from pickleball import transfer

    ctx = datafusion.SessionContext()
    ctx.register_udf(
        datafusion.udf(lambda x: pc.add(x, 1), [pa.int64()], pa.int64(), "immutable", name="plus")
    )
    df = ctx.sql("select plus(x) as y from (values (1), (2)) as t(x)")
    df._ctx = types.SimpleNamespace(_memory_tables={})
    buf = transfer.dataframe_to_bytes(df)
    with open(output, "wb") as out:
        pickle.dump(PickledDataFrame((transfer.restore_dataframe, (url, {}, True, buf))), out)


if __name__ == "__main__":
    main()
