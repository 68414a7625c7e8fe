"""DVC stage ``prepare``: load the raw data, clean it, check the contract, split it.

Outputs the splits at ``paths.train_split``, ``paths.valid_split`` and ``paths.test_split``
(``data/prepared/*.parquet``): cleaned (money and percent are numbers), each split sorted by id,
and split by a hash of the id (``splits.py``: the same row lands in the same split on every
engine). The source is read ``data.chunk_rows`` rows at a time and every chunk is cleaned and
observed for the contract as it arrives; the contract's verdict, worded as for one frame, comes
when every chunk has been seen, and nothing is written unless it passes.

``engine: dask`` in params.yaml runs the same steps on a Dask cluster (``prepare_dask.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import pandas as pd

from ..config import Params, UserError, stage_args
from ..data.contract import Contract, Observation, first_duplicate, judge
from ..data.lake import location
from ..data.sources import iter_raw
from .cluster import engine
from .splits import SPLITS, Part, add_up, prepare_part, shares, write_all


def combine(parts: Iterable[Part], contract: Contract) -> dict[str, pd.DataFrame]:
    """The chunks' splits, once their observations added up pass the contract. Stops at the first
    value cleaning cannot read, its row counted from the source's first row."""
    total: Observation | None = None
    gathered: dict[str, list[pd.DataFrame]] = {name: [] for name in SPLITS}
    ids: list[pd.Series] = []
    for part in parts:
        total = add_up(total, part)
        for name, frame in part.splits.items():
            gathered[name].append(frame)
        if part.ids is not None:
            ids.append(part.ids)
    if total is None:
        raise UserError("the data source yielded nothing to read")
    duplicate = None
    if ids and not total.id_missing:
        duplicate = first_duplicate(pd.concat(ids, ignore_index=True))
    judge(total, contract, duplicate)
    return {name: pd.concat(frames, ignore_index=True) for name, frames in gathered.items()}


def run_local(params: Params, contract: Contract) -> dict[str, pd.DataFrame]:
    block = params.read("split")
    shares(block)  # a bad split block fails before any data are read
    chunks = iter_raw(
        params.read("data.source"),
        contract,
        location=location(params.root, params.read("data.path")),
        table=params.read("data.table"),
        partitions=params.read("data.partitions"),
        chunk_rows=params.read("data.chunk_rows"),
    )
    frames = combine((prepare_part(chunk, contract, block) for chunk in chunks), contract)
    if contract.id:
        frames = {
            name: frame.sort_values(contract.id, kind="stable").reset_index(drop=True)
            for name, frame in frames.items()
        }
    return frames


def run(params: Params) -> dict[str, int]:
    contract = Contract.from_params(params.read("contract"))
    outputs = {
        "train": params.path("train_split"),
        "valid": params.path("valid_split"),
        "test": params.path("test_split"),
    }
    if engine(params) == "dask":
        from .prepare_dask import run_dask

        return run_dask(params, contract, outputs)
    frames = run_local(params, contract)
    write_all({outputs[name]: frames[name] for name in SPLITS}, contract.label_columns())
    return {name: len(frames[name]) for name in SPLITS}


def main(argv: Sequence[str]) -> int:
    args = stage_args(argv, "load, clean, validate and split the data")
    started = time.perf_counter()
    sizes = run(Params.load(args.root))
    listing = ", ".join(f"{name} {size}" for name, size in sizes.items())
    print(f"prepare: {listing} rows in {time.perf_counter() - started:.1f}s")
    return 0
