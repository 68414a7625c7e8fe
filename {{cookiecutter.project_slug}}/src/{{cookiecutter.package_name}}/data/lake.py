"""A Parquet dataset as the raw data: the form a Hadoop/Hive or warehouse export takes.

``data.path`` is a folder under the project root or an ``s3://bucket/prefix`` URI, holding
Parquet files, usually in Hive-style partition folders (``dt=2024-06-01/``). Only the contract's
columns are read (id, target, group, features), and ``data.partitions`` (pyarrow's filter syntax,
``[[dt, ">=", "2024-06-01"]]``) picks the partitions, so a lake far larger than memory is read no
further than the rows and columns the model needs. A partition column the contract does not name
is used for filtering only, never loaded.

S3 goes through pyarrow's own S3 filesystem with the usual AWS credential chain (environment,
profile, IRSA on Kubernetes); ``AWS_ENDPOINT_URL`` points it at another S3 endpoint (MinIO, a
test server). Both engines (pandas batches, ``dask.dataframe``) read through ``ReadPlan``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from .contract import Contract
from .sources import DataSourceError, as_raw_text

ENDPOINT_ENV = "AWS_ENDPOINT_URL"
OPERATORS = ("=", "==", "!=", "<", ">", "<=", ">=", "in", "not in")


def location(root: Path, path: str) -> Path | str:
    """``data.path`` as the readers take it: a URI (``s3://...``) as it is, else under ``root``.
    The one place that decides, so no stage joins a URI to the project root."""
    text = str(path)
    return text if "://" in text else Path(root) / text


def filesystem(where: Path | str) -> tuple[Any, str]:
    """(pyarrow filesystem or None for the local one, the path on it)."""
    if isinstance(where, Path):
        return None, str(where)
    scheme = urlsplit(where).scheme
    if scheme != "s3":
        raise DataSourceError(
            f"data.path {where!r}: the {scheme}:// scheme is not supported; use a local folder "
            "or s3://bucket/prefix"
        )
    from pyarrow import fs

    options: dict[str, Any] = {}
    endpoint = os.environ.get(ENDPOINT_ENV, "").strip()
    if endpoint:
        parsed = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return fs.S3FileSystem(**options), where.removeprefix("s3://").rstrip("/")


def check_partitions(partitions: Any) -> list[tuple[str, str, Any]]:
    """``data.partitions`` as pyarrow filter triples; a clear error for anything else."""
    if partitions in (None, []):
        return []
    example = 'e.g. [[dt, ">=", "2024-06-01"], [region, "in", [eu, us]]]'
    if not isinstance(partitions, list):
        raise DataSourceError(
            f"data.partitions must be a list of [column, operator, value], {example}"
        )
    triples = []
    for entry in partitions:
        if not (isinstance(entry, list | tuple) and len(entry) == 3 and isinstance(entry[0], str)):
            raise DataSourceError(
                f"data.partitions entry {entry!r} is not [column, operator, value], {example}"
            )
        column, operator, value = entry
        if operator not in OPERATORS:
            raise DataSourceError(
                f"data.partitions entry {list(entry)!r}: operator {operator!r} is not one of "
                f"{list(OPERATORS)}"
            )
        if operator in ("in", "not in") and not isinstance(value, list | tuple):
            raise DataSourceError(
                f"data.partitions entry {list(entry)!r}: {operator!r} needs a list of values"
            )
        triples.append((column, operator, list(value) if operator.endswith("in") else value))
    return triples


@dataclass(frozen=True)
class ReadPlan:
    """What to read from the dataset: where, which files (sorted, the partitions the filters
    keep), which columns, which rows. Picklable: the ``dask`` engine ships it to its workers."""

    path: str
    filesystem: Any
    files: tuple[str, ...]
    columns: tuple[str, ...]
    filters: tuple[tuple[str, str, Any], ...]
    schema: Any  # the columns' Arrow types

    def expression(self) -> Any:
        import pyarrow.parquet as pq

        return pq.filters_to_expression(list(self.filters)) if self.filters else None

    def dataset(self, files: Sequence[str]) -> Any:
        """``files`` of the plan as a dataset that still knows their Hive partition values."""
        import pyarrow.dataset as ds

        return ds.dataset(
            list(files),
            filesystem=self.filesystem,
            format="parquet",
            partitioning="hive",
            partition_base_dir=self.path,
        )

    def read(self, files: Sequence[str], contract: Contract, batch_rows: int) -> Iterator[Any]:
        """The plan's rows of ``files`` in their order, as raw frames of at most
        ``batch_rows`` rows."""
        if not files:
            return
        batches = self.dataset(files).to_batches(
            columns=list(self.columns), filter=self.expression(), batch_size=batch_rows
        )
        for batch in batches:
            if batch.num_rows:
                yield as_raw_text(batch.to_pandas(), contract)

    def empty(self, contract: Contract) -> pd.DataFrame:
        """No rows, the plan's columns and types: what the contract sees when no row is kept."""
        return as_raw_text(self.schema.empty_table().to_pandas(), contract)


def read_file(path: str, chosen: ReadPlan, contract: Contract) -> pd.DataFrame:
    """One file's selected rows and columns: a partition of the ``dask`` engine."""
    table = chosen.dataset([path]).to_table(
        columns=list(chosen.columns), filter=chosen.expression()
    )
    return as_raw_text(table.to_pandas(), contract)


def _dataset(where: Path | str) -> Any:
    import pyarrow.dataset as ds

    fs, path = filesystem(where)
    if fs is None and not Path(path).exists():
        raise DataSourceError(
            f"{path} does not exist: check data.path in params.yaml (a Parquet folder or file, "
            "or s3://bucket/prefix)"
        )
    try:
        return ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive")
    except FileNotFoundError:
        raise DataSourceError(f"{where} not found: check data.path and the bucket") from None
    except OSError as exc:  # pyarrow's S3 errors (access, endpoint) are OSErrors
        raise DataSourceError(f"{where} cannot be read: {exc}".replace("\n", " ")) from None
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise DataSourceError(f"{where} is not a readable Parquet dataset ({exc})") from None


def plan(where: Path | str, contract: Contract, partitions: Any) -> ReadPlan:
    """Open the dataset's metadata, choose the contract's columns, check the filters on it."""
    import pyarrow as pa

    dataset = _dataset(where)
    fragments = list(dataset.get_fragments())
    if not fragments:
        raise DataSourceError(f"{where} holds no Parquet files: check data.path")
    names = list(dataset.schema.names)
    # Hive partition columns are in the dataset's schema, not in its files.
    from_folders = set(names) - set(fragments[0].physical_schema.names)
    named = {*contract.reserved, *contract.money, *contract.percent, *contract.categorical}
    named |= set(contract.listed or ())
    glob = contract.features if contract.listed is None else None

    def wanted(name: str) -> bool:
        if name in named:
            return True
        return glob is not None and name not in from_folders and fnmatch.fnmatchcase(name, glob)

    filters = check_partitions(partitions)
    unknown = [column for column, _, _ in filters if column not in names]
    if unknown:
        raise DataSourceError(
            f"data.partitions filters on {unknown}, which {where} does not have "
            f"(partition columns: {sorted(from_folders)}; columns: {names[:8]}...)"
        )
    fs, path = filesystem(where)
    columns = tuple(n for n in names if wanted(n))
    schema = pa.schema([dataset.schema.field(name) for name in columns])
    unchecked = ReadPlan(path, fs, (), columns, tuple(filters), schema)
    expression = unchecked.expression()
    if expression is not None:
        try:  # types are checked when the filter meets the schema: do it now, on no rows
            dataset.schema.empty_table().filter(expression)
        except Exception as exc:  # ArrowNotImplementedError / ArrowInvalid
            raise DataSourceError(
                f"data.partitions {[list(f) for f in filters]} do not apply to {where}: {exc}; "
                f"quote values that are text (a dt=2024-06-01 folder is the string '2024-06-01')"
            ) from None
        # Partitions the filters rule out by their folder names are never opened.
        fragments = list(dataset.get_fragments(filter=expression))
    files = tuple(sorted(fragment.path for fragment in fragments))
    return ReadPlan(path, fs, files, columns, tuple(filters), schema)


def iter_frames(
    where: Path | str, contract: Contract, partitions: Any, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """The dataset's selected rows and columns, in batches of at most ``chunk_rows`` rows, file
    by file in sorted order, as the ``dask`` engine reads its partitions."""
    chosen = plan(where, contract, partitions)
    empty = True
    for frame in chosen.read(chosen.files, contract, chunk_rows):
        empty = False
        yield frame
    if empty:  # no row passed the filters: the columns still tell the contract what is there
        yield chosen.empty(contract)
