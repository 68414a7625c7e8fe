"""DVC stage ``prepare``: load the raw data, clean it, check the contract, split it.

Outputs the splits at ``paths.train_split``, ``paths.valid_split`` and ``paths.test_split``
(``data/prepared/*.csv``): cleaned (money and percent are numbers), sorted by id and split
deterministically (stratified on the target, seeded from ``split.seed``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import Params, stage_args
from ..data.cleaning import clean_frame
from ..data.contract import Contract, validate
from ..data.sources import load_raw


def split(frame: pd.DataFrame, params: Mapping[str, Any], target: str) -> dict[str, pd.DataFrame]:
    """Stratified train/valid/test split; the same frame and seed give the same rows.

    Each class is shuffled with NumPy's seeded generator and cut by the configured shares, so
    every split keeps the overall positive rate.
    """
    valid_size, test_size = float(params["valid_size"]), float(params["test_size"])
    if not (0 < valid_size < 1 and 0 < test_size < 1 and valid_size + test_size < 1):
        raise ValueError("split.valid_size and split.test_size must be in (0, 1) and sum below 1")
    rng = np.random.default_rng(int(params["seed"]))
    labels = frame[target].to_numpy()
    assignment = np.empty(len(frame), dtype="int64")  # 0 train, 1 valid, 2 test
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test, n_valid = round(len(rows) * test_size), round(len(rows) * valid_size)
        assignment[rows[:n_test]] = 2
        assignment[rows[n_test : n_test + n_valid]] = 1
        assignment[rows[n_test + n_valid :]] = 0
    return {
        name: frame[assignment == code].reset_index(drop=True)
        for code, name in ((0, "train"), (1, "valid"), (2, "test"))
    }


def run(params: Params) -> dict[str, int]:
    contract = Contract.from_params(params.read("contract"))
    raw = load_raw(
        params.read("data.source"),
        contract,
        path=params.root / params.read("data.path"),
        table=params.read("data.table"),
    )
    cleaned = clean_frame(raw, contract)
    validate(cleaned, contract)
    parts = split(cleaned, params.read("split"), contract.target)
    outputs = {
        "train": params.path("train_split"),
        "valid": params.path("valid_split"),
        "test": params.path("test_split"),
    }
    write_all({outputs[name]: part for name, part in parts.items()})
    return {name: len(part) for name, part in parts.items()}


def write_all(frames: Mapping[Path, pd.DataFrame]) -> None:
    """Write every split or none: each to a temporary file beside it, then all renamed. A failure
    part-way (a full disk) leaves the previous splits, never a mix for `train` to pick up."""
    temps: dict[Path, Path] = {}
    try:
        for path, frame in frames.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            temps[path] = path.with_name(f".{path.name}.tmp")
            frame.to_csv(temps[path], index=False, lineterminator="\n")
        for path, temp in temps.items():
            os.replace(temp, path)
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)


def main(argv: Sequence[str]) -> int:
    args = stage_args(argv, "load, clean, validate and split the data")
    started = time.perf_counter()
    sizes = run(Params.load(args.root))
    listing = ", ".join(f"{name} {size}" for name, size in sizes.items())
    print(f"prepare: {listing} rows in {time.perf_counter() - started:.1f}s")
    return 0
