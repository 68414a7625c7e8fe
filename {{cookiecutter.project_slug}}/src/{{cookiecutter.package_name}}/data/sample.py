"""Rows made from the contract: a small raw data set with exactly the team's columns.

The test suite builds its projects from these rows, not from the synthetic generator, so it
checks the pipeline against the contract in params.yaml whatever data the team swapped in:
categoricals take their declared levels, money and percent columns are written as the strings
the raw data hold ("$1,234.56", "($12.00)", "67%"), numbers stay inside their ranges, a few
values are missing (within ``max_missing``), and the 0/1 target depends on the features, so a
model trained on them has something to learn. Same contract, size and seed → the same bytes.
"""

from __future__ import annotations

import argparse
import fnmatch
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Params
from .contract import Contract, ContractError

POSITIVE_RATE = 0.2
# The target depends on this many features (spread over the list), as real signal is sparse.
SIGNAL_FEATURES = 8
# Used when the contract does not list the group's values.
DEFAULT_GROUPS = ("A", "B")


def feature_names(contract: Contract) -> list[str]:
    """The feature columns the contract names: its list, or for a glob every column it
    declares (money, percent, categorical, ranges) that the glob matches."""
    if contract.listed is not None:
        return [c for c in contract.listed if c not in contract.reserved]
    declared = [*contract.money, *contract.percent, *contract.categorical, *contract.ranges]
    names = [c for c in dict.fromkeys(declared) if fnmatch.fnmatchcase(c, contract.features)]
    if not names:
        raise ContractError(
            f"contract.features is the glob {contract.features!r} and no declared column matches "
            "it, so no rows can be made from the contract: list the feature columns instead"
        )
    return names


def _bounded(rng: np.random.Generator, n: int, low: float | None, high: float | None) -> np.ndarray:
    if low is not None and high is not None:
        return rng.uniform(low, high, size=n)
    values = rng.standard_normal(n)
    if low is not None:
        return low + np.abs(values) * 10
    if high is not None:
        return high - np.abs(values) * 10
    return values


def _money_text(amount: float) -> str:
    text = f"${abs(amount):,.2f}"
    return f"({text})" if amount < 0 else text


def sample(contract: Contract, n_rows: int, seed: int) -> pd.DataFrame:
    """``n_rows`` raw rows for ``contract`` (money and percent as text, as a raw file has them)."""
    if n_rows < 1:
        raise ValueError(f"n_rows must be positive, got {n_rows}")
    rng = np.random.default_rng(seed)
    columns: dict[str, list | np.ndarray] = {}
    if contract.id:
        columns[contract.id] = np.arange(1, n_rows + 1)
    logit = np.zeros(n_rows)
    missing_rate = min(0.03, contract.max_missing / 2)
    names = feature_names(contract)
    step = max(1, len(names) // SIGNAL_FEATURES)
    for index, name in enumerate(names):
        weight = rng.choice([-1.0, 1.0]) if index % step == 0 else 0.0
        kind = contract.kind(name)
        if kind == "categorical":
            levels = contract.categorical[name]
            codes = rng.integers(0, len(levels), size=n_rows)
            logit += weight * np.linspace(-1, 1, len(levels))[codes]
            values: list = [levels[c] for c in codes]
        else:
            low, high = contract.ranges.get(name, (None, None))
            if kind == "percent" and low is None and high is None:
                low, high = 0.0, 100.0
            numbers = np.round(_bounded(rng, n_rows, low, high), 2)
            spread = numbers.std() or 1.0
            logit += weight * (numbers - numbers.mean()) / spread
            if kind == "money":
                values = [_money_text(v) for v in numbers.tolist()]
            elif kind == "percent":
                values = [f"{v:g}%" for v in numbers.tolist()]
            else:
                values = numbers.tolist()
        if index % 3 == 1 and missing_rate > 0:  # a few columns have gaps, as real ones do
            for row in np.flatnonzero(rng.uniform(size=n_rows) < missing_rate):
                values[row] = None
        columns[name] = values
    if contract.group:
        groups = contract.groups or DEFAULT_GROUPS
        columns[contract.group] = [groups[g] for g in rng.integers(0, len(groups), size=n_rows)]
    logit *= 2.5 / max(float(logit.std()), 1e-9)  # a learnable but not perfect signal
    low, high = -20.0, 20.0  # the intercept that gives POSITIVE_RATE (bisection: deterministic)
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (
            (mid, high)
            if (1 / (1 + np.exp(-(logit + mid)))).mean() < POSITIVE_RATE
            else (
                low,
                mid,
            )
        )
    target = rng.uniform(size=n_rows) < 1 / (1 + np.exp(-(logit + low)))
    target[:2] = [True, False]  # both classes, even in a handful of rows
    columns[contract.target] = target.astype("int64")
    return pd.DataFrame(columns)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        description="write rows made from params.yaml's contract to data.path (test fixtures)"
    )
    parser.add_argument("--root", type=Path, default=Path(), help="project root (default: .)")
    parser.add_argument("--out", type=Path, help="where to write (default: data.path)")
    args = parser.parse_args(list(argv))
    params = Params.load(args.root)
    contract = Contract.from_params(params.read("contract"))
    frame = sample(contract, int(params.read("data.n_rows")), int(params.read("data.seed")))
    out = args.out or params.root / params.read("data.path")
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, lineterminator="\n")
    print(f"sample-data: {len(frame)} rows made from the contract → {out}")
    return 0
