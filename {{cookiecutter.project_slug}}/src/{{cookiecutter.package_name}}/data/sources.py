"""The one raw-data loader: a CSV file (default) or a SQL table through SQLAlchemy.

For SQL, the connection URL comes from the ``DATA_URL`` environment variable only (for example
``postgresql+psycopg://user@db:5432/analytics`` with the password in PGPASSWORD, or
``mysql+pymysql://user@db:3306/analytics``), so credentials never land in params.yaml,
dvc.lock or git. Rows are sorted by the contract's id column, so the splits do not depend on
the order a database returns rows in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .contract import Contract

DATA_URL_ENV = "DATA_URL"
SOURCES = ("csv", "sql")


class DataSourceError(RuntimeError):
    """The configured source cannot be read (missing file, missing DATA_URL, no table)."""


def data_url(environ: Mapping[str, str] | None = None) -> str:
    url = (os.environ if environ is None else environ).get(DATA_URL_ENV, "").strip()
    if not url:
        raise DataSourceError(
            f"data.source is sql but {DATA_URL_ENV} is not set; export it, e.g. "
            f"{DATA_URL_ENV}=postgresql+psycopg://user@localhost:5432/db (never put it in a file)"
        )
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def read_csv(path: Path, contract: Contract) -> pd.DataFrame:
    if not path.exists():
        raise DataSourceError(
            f"{path} does not exist: run `dvc repro` or the generate-data command"
        )
    text = dict.fromkeys(contract.text_columns(), "object")
    return pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""])


def read_sql(table: str, contract: Contract, url: str) -> pd.DataFrame:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                raise DataSourceError(
                    f"table {table!r} not found at {redact(url)}: run the seed-db command"
                )
            reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
            query = sa.select(reflected)
            if contract.id and contract.id in reflected.c:
                query = query.order_by(reflected.c[contract.id])
            frame = pd.read_sql(query, conn)
    finally:
        engine.dispose()
    for column in contract.text_columns():
        if column in frame:
            frame[column] = frame[column].astype("object")
    return frame


def load_raw(
    source: str, contract: Contract, *, path: Path | None = None, table: str | None = None
) -> pd.DataFrame:
    """Load the raw frame from ``source`` (params.yaml ``data.source``): the CSV file at ``path``
    or the SQL ``table`` at ``DATA_URL``."""
    if source == "csv" and path is not None:
        frame = read_csv(path, contract)
    elif source == "sql" and table is not None:
        frame = read_sql(table, contract, data_url())
    elif source in SOURCES:
        setting = "data.path" if source == "csv" else "data.table"
        raise DataSourceError(f"data.source is {source} but {setting} is not set")
    else:
        raise DataSourceError(f"data.source {source!r} is not one of {SOURCES}")
    if contract.id and contract.id in frame:
        frame = frame.sort_values(contract.id, kind="stable").reset_index(drop=True)
    return frame
