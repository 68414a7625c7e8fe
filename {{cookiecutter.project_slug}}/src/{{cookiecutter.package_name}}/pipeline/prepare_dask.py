"""``prepare`` with ``engine: dask``: the local engine's steps, one partition per task.

Every partition is cleaned, observed for the contract, conformed and split by
``splits.prepare_part`` (the local engine's own function) inside ``map_partitions``; each worker
writes its partition's rows of each split as one Parquet file into a staging folder beside the
split, and hands back only its ``Observation`` and row counts. The client adds the observations
up in partition order (so the rows in the messages count from the source's first row, as on the
local engine), asks for the ids that repeat across partitions (``value_counts``: only the id
column moves between workers, hashed), and publishes the staging folders as the splits only if
the contract passes: a folder per split, ``data/prepared/train.parquet/part-000000.parquet`` ...,
which ``config.read_split`` reads like the local engine's single file. No partition's rows
ever travel to the client.

The workers write to the splits' folders, so with a remote scheduler those paths must be on
storage the workers share with the stage (a volume mounted in every pod).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import Params
from ..data import dask_frames
from ..data.contract import Contract, Observation, judge
from ..data.lake import location
from ..data.sources import DataSourceError, as_raw_text
from .cluster import dask_client
from .splits import (
    SPLITS,
    add_up,
    prepare_part,
    publish,
    remove,
    shares,
    staging,
    write_parquet,
)


@dataclass(frozen=True)
class PartResult:
    """What a worker sends back for its partition: never its rows."""

    observation: Observation
    unreadable: tuple[str, Any, int, str] | None
    sizes: dict[str, int]


def part_file(number: int) -> str:
    return f"part-{number:06d}.parquet"  # sorted names = partition order


def prepare_partition(
    raw: pd.DataFrame,
    contract: Contract,
    block: Mapping[str, Any],
    folders: Mapping[str, str],
    partition_info: dict[str, Any] | None = None,
) -> pd.Series:
    """One partition through ``prepare_part``; its splits written to ``folders`` by the worker.
    (Dask passes ``partition_info``, the partition's number, to a function that names it.)"""
    number = partition_info["number"] if partition_info else 0
    part = prepare_part(as_raw_text(raw, contract), contract, block)
    sizes: dict[str, int] = {}
    for name, frame in part.splits.items():
        if contract.id:
            frame = frame.sort_values(contract.id, kind="stable")
        sizes[name] = len(frame)
        if len(frame):
            write_parquet(frame, Path(folders[name]) / part_file(number), contract.label_columns())
    return pd.Series([PartResult(part.observation, part.unreadable, sizes)], dtype="object")


def _repeat_rows(ids: pd.Series, repeated: frozenset) -> pd.Series:
    hits = np.flatnonzero(ids.isin(repeated).to_numpy())
    found = (hits.tolist(), ids.iloc[hits].tolist())
    return pd.Series([found], dtype="object")


def first_repeat(raw: Any, id_column: str, results: list[PartResult]) -> tuple[Any, int] | None:
    """The first row (counted from the source's start) whose id an earlier row has, if any."""
    counts = raw[id_column].value_counts()
    repeated = frozenset(counts[counts > 1].index.compute().tolist())
    if not repeated:
        return None
    located = raw[id_column].map_partitions(_repeat_rows, repeated, meta=(None, "object"))
    offsets = np.cumsum([0, *(r.observation.rows for r in results)])
    seen: set[Any] = set()
    for offset, (rows, ids) in zip(offsets, located.compute().tolist(), strict=False):
        for row, value in zip(rows, ids, strict=True):
            if value in seen:
                return value, int(offset + row)
            seen.add(value)
    return None


def combine(results: list[PartResult]) -> tuple[Observation, dict[str, int]]:
    """The partitions' observations added up in order, and the rows in each split."""
    total: Observation | None = None
    sizes = dict.fromkeys(SPLITS, 0)
    for result in results:
        total = add_up(total, result)
        for name, size in result.sizes.items():
            sizes[name] += size
    if total is None:
        raise DataSourceError("the data source has no partitions to read")
    return total, sizes


def run_dask(params: Params, contract: Contract, outputs: Mapping[str, Path]) -> dict[str, int]:
    block = params.read("split")
    shares(block)  # a bad split block fails before any data are read
    where = dict(
        location=location(params.root, params.read("data.path")),
        table=params.read("data.table"),
        partitions=params.read("data.partitions"),
        partition_rows=params.read("dask.partition_rows"),
    )
    folders = {name: staging(outputs[name]) for name in SPLITS}
    with dask_client(params):
        raw = dask_frames.read(params.read("data.source"), contract, **where)
        for folder in folders.values():
            remove(folder)
            folder.mkdir(parents=True)
        try:
            prepared = raw.map_partitions(
                prepare_partition,
                contract,
                dict(block),
                {name: str(folder) for name, folder in folders.items()},
                meta=(None, "object"),
            )
            results = prepared.compute().tolist()
            total, sizes = combine(results)
            duplicate = None
            if contract.id and contract.id in total.columns and not total.id_missing:
                duplicate = first_repeat(raw, contract.id, results)
            judge(total, contract, duplicate)
            publish({outputs[name]: folders[name] for name in SPLITS})
        finally:
            for folder in folders.values():
                remove(folder)
    return sizes
