"""The train/valid/test split and the prepared splits on disk, shared by both engines.

Which split a row lands in is decided by the row alone: a stable hash of ``split.seed`` and its id,
mapped to [0, 1) and cut at ``test_size`` and ``test_size + valid_size``. So a row lands in the
same split whatever the chunking or partitioning of the data, with no global shuffle, on the local
engine and on Dask alike; a row added later never moves the others. The price: the split is not
stratified, so each split's share and positive rate are those of a random sample (on 40,000
rows, within about 1% of the configured share and half a point of the positive rate).

``prepare_part`` is what each engine does with one chunk or partition: clean it, observe it for
the contract, conform its dtypes and split it. The splits are Parquet (dtypes kept: numbers as
float64, categories and the group as text), written all or none.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import UserError
from ..data.cleaning import CleaningError, clean_frame
from ..data.contract import Contract, Observation, observe

SPLITS = ("train", "valid", "test")


class SplitError(UserError, ValueError):
    """params.yaml ``split`` shares are not usable."""


def shares(block: Mapping[str, Any]) -> tuple[int, float, float]:
    """(seed, valid_size, test_size) of params.yaml ``split``, checked."""
    valid_size, test_size = float(block["valid_size"]), float(block["test_size"])
    if not (0 < valid_size < 1 and 0 < test_size < 1 and valid_size + test_size < 1):
        raise SplitError("split.valid_size and split.test_size must be in (0, 1) and sum below 1")
    return int(block["seed"]), valid_size, test_size


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit moves every output bit (uint64 wraps on purpose)."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _keys(frame: pd.DataFrame, id_column: str | None) -> np.ndarray:
    """A uint64 per row that depends on its id only: whole-number ids as themselves (so 7 and
    7.0 agree across readers), other ids by pandas' stable hash of their text. Without an id
    column, the hash of the whole row."""
    if not id_column:
        return pd.util.hash_pandas_object(frame, index=False).to_numpy()
    ids = frame[id_column]
    if pd.api.types.is_integer_dtype(ids) or (
        pd.api.types.is_float_dtype(ids) and bool((ids == np.floor(ids)).all())
    ):
        return ids.to_numpy(dtype="int64").view("uint64")
    return pd.util.hash_pandas_object(ids.astype(str), index=False).to_numpy()


def assign(frame: pd.DataFrame, id_column: str | None, block: Mapping[str, Any]) -> np.ndarray:
    """0 (train), 1 (valid) or 2 (test) for each row, from ``split.seed`` and the row's id."""
    seed, valid_size, test_size = shares(block)
    with np.errstate(over="ignore"):
        salt = _mix(np.array([seed % 2**64], dtype="uint64"))[0]
        mixed = _mix(_keys(frame, id_column) ^ salt)
    unit = (mixed >> np.uint64(11)).astype("float64") * 2.0**-53
    return np.where(unit < test_size, 2, np.where(unit < test_size + valid_size, 1, 0))


def split(frame: pd.DataFrame, id_column: str | None, block: Mapping[str, Any]) -> dict[str, Any]:
    """The rows of ``frame`` by split name, in their order."""
    codes = assign(frame, id_column, block)
    return {name: frame[codes == code].reset_index(drop=True) for code, name in enumerate(SPLITS)}


def conform(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """One dtype per column whatever the chunk held (an all-missing chunk, whole numbers):
    features as float64, categories and the group as text, a clean target as int64. A column
    that cannot conform is left for the contract to report."""
    dtypes: dict[str, str] = {}
    for column in contract.feature_columns(frame.columns):
        values = frame[column]
        if contract.kind(column) == "categorical" or values.dtype == "float64":
            continue
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            dtypes[column] = "float64"
    for column in contract.label_columns():
        if column in frame and frame[column].dtype != "object":
            dtypes[column] = "object"
    target = frame.get(contract.target)
    if target is not None and pd.api.types.is_integer_dtype(target) and target.dtype != "int64":
        dtypes[contract.target] = "int64"
    return frame.astype(dtypes) if dtypes else frame


@dataclass(frozen=True)
class Part:
    """One chunk or partition after ``prepare_part``. Rows count from the chunk's first row."""

    observation: Observation
    # (column, value, row, reason) of the first value cleaning could not read; then no splits.
    unreadable: tuple[str, Any, int, str] | None
    splits: dict[str, pd.DataFrame]
    # The chunk's ids in its order, for the one check that needs them all (uniqueness).
    ids: pd.Series | None = None


def prepare_part(raw: pd.DataFrame, contract: Contract, block: Mapping[str, Any]) -> Part:
    """Clean one chunk, observe it for the contract, conform its dtypes and split it."""
    try:
        cleaned = clean_frame(raw, contract)
    except CleaningError as exc:
        columns = tuple(raw.columns)
        failure = (exc.column, exc.value, int(exc.row or 0), exc.reason)
        return Part(Observation(columns=columns, rows=len(raw)), failure, {})
    conformed = conform(cleaned, contract)
    ids = cleaned[contract.id].reset_index(drop=True) if contract.id in cleaned else None
    return Part(observe(cleaned, contract), None, split(conformed, contract.id, block), ids)


def add_up(total: Observation | None, part: Any) -> Observation:
    """``total`` (the observation of the chunks before ``part``, or None) with ``part``'s added:
    a ``Part``, or the dask engine's result for a partition. A part with an unreadable value is
    that value's error, its row counted from the source's start."""
    if part.unreadable is not None:
        column, value, row, reason = part.unreadable
        first_row = total.rows if total else 0
        raise CleaningError(column, value, first_row + row, reason)
    return part.observation if total is None else total.then(part.observation)


# --- the splits on disk --------------------------------------------------------------------------


def to_arrow(frame: pd.DataFrame, text_columns: Sequence[str]) -> Any:
    """A split as an Arrow table; text columns typed as strings even when a chunk has none."""
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    for column in text_columns:
        if column in table.column_names and table.schema.field(column).type != pa.string():
            index = table.column_names.index(column)
            table = table.set_column(index, column, table[column].cast(pa.string()))
    return table


def write_parquet(frame: pd.DataFrame, path: Path, text_columns: Sequence[str]) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_arrow(frame, text_columns), path)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def staging(path: Path) -> Path:
    """Where a split is written before it is published (beside it, so the rename is atomic)."""
    return path.with_name(f".{path.name}.tmp")


def publish(staged: Mapping[Path, Path]) -> None:
    """Move each staged file or folder to its final path, all or none: the previous outputs are
    moved aside first and, if any move fails, everything goes back where it was, so `train`
    never sees a mix."""
    moved_aside: dict[Path, Path] = {}
    placed: dict[Path, Path] = {}
    try:
        for final, temp in staged.items():
            if final.exists() or final.is_symlink():
                aside = final.with_name(f".{final.name}.old")
                remove(aside)
                os.replace(final, aside)
                moved_aside[final] = aside
            os.replace(temp, final)
            placed[final] = temp
    except BaseException:
        for final, temp in placed.items():
            os.replace(final, temp)  # back where it was staged
        for final, aside in moved_aside.items():
            os.replace(aside, final)
        raise
    for aside in moved_aside.values():
        remove(aside)


def write_all(frames: Mapping[Path, pd.DataFrame], text_columns: Sequence[str]) -> None:
    """Write every split or none: each to a temporary file beside it, then all published. A
    failure part-way (a full disk) leaves the previous splits, never a mix for `train` to read."""
    staged = {path: staging(path) for path in frames}
    try:
        for path, frame in frames.items():
            remove(staged[path])
            write_parquet(frame, staged[path], text_columns)
        publish(staged)
    finally:
        for temp in staged.values():
            remove(temp)
