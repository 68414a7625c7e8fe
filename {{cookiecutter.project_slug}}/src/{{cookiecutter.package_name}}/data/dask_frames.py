"""The raw data as a ``dask.dataframe`` for ``engine: dask``: the same sources as ``sources.py``,
read partition by partition on the workers instead of chunk by chunk in one process.

- parquet: one partition per file of ``lake.plan`` (the very columns, filters and file order
  the local engine reads);
- csv: ``dd.read_csv``, blocks of about ``dask.partition_rows`` rows, the text columns as text;
- sql: ``dd.read_sql_table``, ranges of the contract's id of about ``dask.partition_rows`` rows
  each, every range queried by a worker (so the id column is required), each in id order.

Rows keep the order of the local engine's chunks, so both count rows alike in their messages.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .contract import Contract
from .lake import plan, read_file
from .sources import DataSourceError, check_where, csv_options, data_url, reflect

# Bytes sampled from the head of a CSV file to estimate its row length.
CSV_SAMPLE_BYTES = 1 << 20


def _csv_blocksize(path: Path, partition_rows: int) -> int:
    with open(path, "rb") as handle:
        head = handle.read(CSV_SAMPLE_BYTES)
    rows = max(1, head.count(b"\n"))
    return max(1 << 16, int(len(head) / rows * partition_rows))


def _sql_table(table: str, url: str, contract: Contract, partition_rows: int) -> Any:
    import dask.dataframe as dd
    import sqlalchemy as sa

    if not contract.id:
        raise DataSourceError(
            "engine: dask reads a SQL table in ranges of its id column, and the contract names "
            "none: set contract.id, or use engine: local"
        )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            reflected = reflect(conn, table, url)
            count = conn.execute(sa.select(sa.func.count()).select_from(reflected)).scalar_one()
    finally:
        engine.dispose()
    npartitions = max(1, math.ceil(count / partition_rows))
    frame = dd.read_sql_table(table, url, index_col=contract.id, npartitions=npartitions)
    # Each range arrives in the database's order; the local engine reads in id order.
    return frame.map_partitions(lambda part: part.sort_index()).reset_index()


def read(
    source: str,
    contract: Contract,
    *,
    location: Path | str | None,
    table: str | None,
    partitions: Any,
    partition_rows: int,
) -> Any:
    """The raw data of ``source`` as a lazy ``dask.dataframe.DataFrame``."""
    import dask.dataframe as dd

    check_where(source, table, location, ("dask.partition_rows", partition_rows))
    if source == "sql":
        return _sql_table(table, data_url(), contract, partition_rows)
    if source == "parquet":
        chosen = plan(location, contract, partitions)
        if not chosen.files:
            return dd.from_pandas(chosen.empty(contract), npartitions=1)
        # One partition per file, in sorted order: dd.read_parquet may combine small files and
        # lists them in the filesystem's order, and the rows must count as on the local engine.
        return dd.from_map(
            read_file,
            list(chosen.files),
            chosen=chosen,
            contract=contract,
            meta=chosen.empty(contract),
            enforce_metadata=False,
        )
    if not isinstance(location, Path) or not location.is_file():
        raise DataSourceError(f"{location} does not exist or is not a local file: check data.path")
    return dd.read_csv(
        str(location), **csv_options(contract), blocksize=_csv_blocksize(location, partition_rows)
    )
