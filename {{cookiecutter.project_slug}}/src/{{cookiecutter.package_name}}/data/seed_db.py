"""Seed a SQL table (params ``data.table``) at ``DATA_URL`` with the synthetic data set.

Raw text columns (money, percent, categories) are stored as text, exactly as in the CSV, so the
SQL source exercises the same cleaning as the file source.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Params
from .sources import data_url, redact
from .synthetic import generate

# PostgreSQL caps one statement at 65,535 bound parameters; stay under it for any width.
MAX_PARAMETERS = 60_000


def column_types(frame: pd.DataFrame) -> dict[str, Any]:
    """Explicit SQL types: double precision for floats (MySQL's bare FLOAT is 4 bytes), TEXT
    for raw strings, BIGINT for integers."""
    import sqlalchemy as sa

    types: dict[str, Any] = {}
    for column, dtype in frame.dtypes.items():
        if pd.api.types.is_float_dtype(dtype):
            types[str(column)] = sa.Float(precision=53)
        elif pd.api.types.is_integer_dtype(dtype):
            types[str(column)] = sa.BigInteger()
        else:
            types[str(column)] = sa.Text()
    return types


def seed(frame: pd.DataFrame, table: str, url: str) -> int:
    """Replace ``table`` with ``frame``; return the number of rows written."""
    import sqlalchemy as sa

    chunksize = max(1, MAX_PARAMETERS // max(1, frame.shape[1]))
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            frame.to_sql(
                table,
                conn,
                if_exists="replace",
                index=False,
                chunksize=chunksize,
                method="multi",
                dtype=column_types(frame),
            )
    finally:
        engine.dispose()
    return len(frame)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        description="load the synthetic data into the table at DATA_URL"
    )
    parser.add_argument("--root", type=Path, default=Path(), help="project root (default: .)")
    parser.add_argument("--rows", type=int, help="override data.n_rows")
    parser.add_argument("--table", help="override data.table")
    args = parser.parse_args(list(argv))
    params = Params.load(args.root)
    url = data_url()
    n_rows = args.rows or int(params.read("data.n_rows"))
    table = args.table or params.read("data.table")
    seed_value = int(params.read("data.seed"))
    started = time.perf_counter()
    print(f"seed-db: generating {n_rows} rows (seed {seed_value})", flush=True)
    frame = generate(n_rows, seed_value)
    print(f"seed-db: writing table {table!r} at {redact(url)}", flush=True)
    written = seed(frame, table, url)
    print(f"seed-db: {written} rows in {time.perf_counter() - started:.1f}s", flush=True)
    return 0
