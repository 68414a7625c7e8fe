"""The one raw-data loader: a CSV file (default), a Parquet dataset (``lake.py``: a folder or
an ``s3://`` prefix, Hive partitions) or a SQL table through SQLAlchemy, read chunk by chunk.

For SQL, the connection URL comes from the ``DATA_URL`` environment variable only (for example
``postgresql+psycopg://user@db:5432/analytics`` with the password in PGPASSWORD, or
``mysql+pymysql://user@db:3306/analytics``), so credentials never land in params.yaml,
dvc.lock or git. The table is read in id order through a server-side cursor, ``data.chunk_rows``
rows at a time, so a table larger than memory streams.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import UserError
from .contract import Contract

DATA_URL_ENV = "DATA_URL"
SOURCES = ("csv", "parquet", "sql")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Rows per chunk of the chunked readers: a few MB of text per chunk for a wide table.
CHUNK_ROWS = 50_000


class DataSourceError(UserError, RuntimeError):
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
    """The whole CSV file as ``prepare`` reads it, in one frame (tests, notebooks)."""
    return pd.concat(list(_csv_chunks(path, contract, CHUNK_ROWS)), ignore_index=True)


def as_raw_text(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The contract's text columns (money, percent, categories, group) as Python objects, as
    every reader hands them to cleaning, whatever string type the reader made."""
    for column in contract.text_columns():
        if column in frame and frame[column].dtype != "object":
            frame[column] = frame[column].astype("object")
    return frame


# Chunked readers (`contract init`; `iter_sql` serves `prepare` too): a table larger than memory
# goes through one chunk (a DataFrame) at a time. Every value arrives as text or as the source's
# own type, never guessed by pandas: only empty cells (CSV) and NULL (SQL) are missing, so "NA"
# or "None" stay values for the caller to judge.


def iter_csv(path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """A CSV file in chunks of ``chunk_rows`` rows, every column as text."""
    if not path.is_file():
        raise DataSourceError(f"{path} does not exist or is not a file: check the path")
    try:
        reader = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[""], chunksize=chunk_rows
        )
        with reader:
            yield from reader
    except pd.errors.EmptyDataError:
        raise DataSourceError(f"{path} is empty: it has no header and no rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"{path} is not a readable CSV file ({exc})") from None


def iter_parquet(path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """A Parquet file (or a folder of them) in record batches of at most ``chunk_rows`` rows."""
    if not path.exists():
        raise DataSourceError(f"{path} does not exist: check the path")
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(path, format="parquet")
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise DataSourceError(f"{path} is not a readable Parquet file ({exc})") from None
    for batch in dataset.to_batches(batch_size=chunk_rows):
        yield batch.to_pandas()


def reflect(conn: Any, table: str, url: str) -> Any:
    """``table`` as SQLAlchemy reflects it over ``conn``; a clear error when it does not exist."""
    import sqlalchemy as sa

    if not sa.inspect(conn).has_table(table):
        raise DataSourceError(f"table {table!r} not found at {redact(url)}: check its name")
    return sa.Table(table, sa.MetaData(), autoload_with=conn)


def iter_sql(
    table: str, url: str, chunk_rows: int = CHUNK_ROWS, order_by: str | None = None
) -> Iterator[pd.DataFrame]:
    """A SQL table in chunks, through a server-side cursor (``stream_results``): the client
    holds one chunk at a time, not the whole result."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            reflected = reflect(conn, table, url)
            query = sa.select(reflected)
            if order_by and order_by in reflected.c:
                query = query.order_by(reflected.c[order_by])
            streaming = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows)
            yield from pd.read_sql(query, streaming, chunksize=chunk_rows)
    finally:
        engine.dispose()


def iter_chunks(
    *,
    path: Path | None = None,
    table: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    order_by: str | None = None,
) -> Iterator[pd.DataFrame]:
    """The chunks of a CSV or Parquet file (by its suffix) or of a SQL table at DATA_URL."""
    if table is not None:
        return iter_sql(table, data_url(), chunk_rows, order_by)
    if path is None:
        raise DataSourceError("give a data file or a table")
    if path.suffix.lower() in PARQUET_SUFFIXES or path.is_dir():
        return iter_parquet(path, chunk_rows)
    return iter_csv(path, chunk_rows)


# The readers of `prepare`: chunks typed as the source types them (numbers as numbers), only the
# contract's text columns as text, for cleaning to parse.


def check_where(
    source: str, table: str | None, location: Path | str | None, rows: tuple[str, Any]
) -> None:
    """What both engines check before reading ``source``: it is known, it names its table or
    its path, and ``rows`` (the setting and value of its chunk or partition size) is a whole
    number of at least 1."""
    if source not in SOURCES:
        raise DataSourceError(f"data.source {source!r} is not one of {SOURCES}")
    setting, value = rows
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataSourceError(f"{setting} must be a positive whole number, got {value!r}")
    if source == "sql":
        if not table:
            raise DataSourceError("data.source is sql but data.table is not set")
    elif location is None or not str(location):
        raise DataSourceError(f"data.source is {source} but data.path is not set")


def csv_options(contract: Contract) -> dict[str, Any]:
    """How a raw CSV file is parsed, by either engine: the contract's text columns as text, and
    only empty cells missing."""
    return {
        "dtype": dict.fromkeys(contract.text_columns(), "object"),
        "keep_default_na": False,
        "na_values": [""],
    }


def iter_raw(
    source: str,
    contract: Contract,
    *,
    location: Path | str | None = None,
    table: str | None = None,
    partitions: Any = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """The raw data of ``source`` (params.yaml ``data.source``) in chunks of at most
    ``chunk_rows`` rows, in the source's order (a SQL table: by id): the CSV file or Parquet
    dataset at ``location`` (``lake.location`` of ``data.path``), or the SQL ``table`` at
    DATA_URL. Text columns arrive as text, other columns as the source typed them."""
    check_where(source, table, location, ("data.chunk_rows", chunk_rows))
    if source == "sql":
        chunks = iter_sql(table, data_url(), chunk_rows, order_by=contract.id)
        return (as_raw_text(chunk, contract) for chunk in chunks)
    if source == "parquet":
        from .lake import iter_frames

        return iter_frames(location, contract, partitions, chunk_rows)
    if not isinstance(location, Path):
        raise DataSourceError(
            f"data.path {location!r}: the csv source reads a local file; export the table to "
            "Parquet for data.source parquet, which reads s3:// too"
        )
    return _csv_chunks(location, contract, chunk_rows)


def _csv_chunks(path: Path, contract: Contract, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if not path.exists():
        raise DataSourceError(
            f"{path} does not exist: check data.path in params.yaml (`dvc pull` fetches a "
            "DVC-tracked file; `dvc repro` writes the synthetic one)"
        )
    reader = pd.read_csv(path, **csv_options(contract), chunksize=chunk_rows)
    with reader:
        yield from reader


def load_raw(source: str, contract: Contract, **where: Any) -> pd.DataFrame:
    """The whole raw frame of ``source`` (``iter_raw``'s arguments), sorted by id: for a look at
    data that fit in memory (notebooks, tests); ``prepare`` goes chunk by chunk."""
    frame = pd.concat(list(iter_raw(source, contract, **where)), ignore_index=True)
    if contract.id and contract.id in frame:
        frame = frame.sort_values(contract.id, kind="stable").reset_index(drop=True)
    return frame
