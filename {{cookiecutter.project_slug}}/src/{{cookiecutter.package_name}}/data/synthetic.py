"""A deterministic synthetic data set that imitates the seed's transaction data.

Columns ``x0`` to ``x99`` (mostly numeric, correlated through a few latent factors), ``x12`` money
strings (``$1,234.56``, accounting negatives ``($12,000)``), ``x62`` percent strings (``67%``),
categoricals ``x5`` (weekday), ``x31`` (region) and ``x81`` (month), a ``group`` column used only
by the fairness check, 2 to 5 % missing values in a few columns, an ``id`` key and a binary target
``y`` (about 20 % positives) driven by linear and non-linear signal.

Same ``seed`` and ``n_rows`` → the same bytes on every machine (NumPy's PCG64 generator).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Params

N_COLUMNS = 100
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
REGIONS = ("africa", "america", "asia", "europe", "oceania")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
GROUPS = ("group_a", "group_b")
POSITIVE_RATE = 0.20
# column → fraction of values removed (missing completely at random)
MISSING = {"x3": 0.03, "x12": 0.02, "x27": 0.04, "x31": 0.02, "x44": 0.05, "x62": 0.03, "x88": 0.02}
# (column index, weight) of the linear part of the signal, on standardised values
LINEAR = ((0, 0.9), (1, -0.7), (2, 0.6), (4, 0.5), (6, -0.5), (8, 0.45), (10, 0.4), (15, -0.35))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _intercept(logit: np.ndarray, rate: float) -> float:
    """The intercept that makes the mean probability ``rate`` (bisection, deterministic)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        if _sigmoid(logit + mid).mean() < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _money(amounts: np.ndarray, whole: np.ndarray) -> list[str]:
    out = []
    for amount, is_whole in zip(amounts.tolist(), whole.tolist(), strict=True):
        text = f"${abs(amount):,.0f}" if is_whole else f"${abs(amount):,.2f}"
        out.append(f"({text})" if amount < 0 else text)
    return out


def generate(n_rows: int, seed: int) -> pd.DataFrame:
    """The synthetic frame (raw: money and percent columns are strings)."""
    if n_rows < 1:
        raise ValueError(f"n_rows must be positive, got {n_rows}")
    rng = np.random.default_rng(seed)
    n = n_rows
    latent = rng.standard_normal((n, 4))
    loadings = rng.uniform(-0.6, 0.6, size=(4, N_COLUMNS))
    z = rng.standard_normal((n, N_COLUMNS)) * 0.8 + latent @ loadings
    z = (z - z.mean(axis=0)) / z.std(axis=0)  # standardised drivers of every column

    group_b = rng.uniform(size=n) < _sigmoid(-0.4 + 0.8 * z[:, 30])
    weekday = rng.choice(len(WEEKDAYS), size=n, p=[0.16, 0.16, 0.16, 0.16, 0.16, 0.1, 0.1])
    region = rng.choice(len(REGIONS), size=n, p=[0.1, 0.3, 0.25, 0.25, 0.1])
    month = rng.integers(0, len(MONTHS), size=n)
    refund = rng.uniform(size=n) < 0.08
    amount = np.minimum(np.exp(7.0 + 1.1 * z[:, 12]), 900_000.0)
    whole = rng.uniform(size=n) < 0.05
    amount = np.where(whole, np.round(amount, -3), np.round(amount, 2))
    amount = np.where(refund, -amount, amount)
    percent = np.clip(np.round(50 + 18 * z[:, 62]), 0, 100)

    logit = sum(weight * z[:, j] for j, weight in LINEAR)
    logit = (
        logit + 0.6 * (z[:, 20] ** 2 - 1) + 0.6 * z[:, 21] * z[:, 22] + 0.5 * np.sin(2 * z[:, 23])
    )
    logit = logit + 0.35 * (np.log10(np.abs(amount) + 1) - 3) + 0.9 * refund
    logit = logit + 0.03 * (percent - 50)
    logit = logit + 0.5 * (weekday >= 5) + np.array([0.2, 0.0, 0.3, -0.1, -0.3])[region]
    logit = logit + np.where(month == 11, 0.5, 0.0) + np.where(month == 10, 0.3, 0.0)
    logit = logit + 0.3 * group_b
    probability = _sigmoid(logit + _intercept(logit, POSITIVE_RATE))
    y = (rng.uniform(size=n) < probability).astype("int64")

    frame: dict[str, object] = {"id": np.arange(1, n + 1, dtype="int64")}
    scale = rng.uniform(0.5, 20.0, size=N_COLUMNS)
    shift = rng.uniform(-10.0, 10.0, size=N_COLUMNS)
    for j in range(N_COLUMNS):
        name = f"x{j}"
        if name == "x5":
            frame[name] = np.array(WEEKDAYS, dtype=object)[weekday]
        elif name == "x31":
            frame[name] = np.array(REGIONS, dtype=object)[region]
        elif name == "x81":
            frame[name] = np.array(MONTHS, dtype=object)[month]
        elif name == "x12":
            frame[name] = np.array(_money(amount, whole), dtype=object)
        elif name == "x62":
            frame[name] = np.array([f"{int(p)}%" for p in percent.tolist()], dtype=object)
        elif j % 7 == 3:  # skewed, positive (amount-like)
            frame[name] = np.round(np.exp(0.5 * z[:, j]) * scale[j], 4)
        elif j % 7 == 5:  # small counts
            frame[name] = np.round(np.exp(0.4 * z[:, j]) * 3).astype("float64")
        else:
            frame[name] = np.round(shift[j] + scale[j] * z[:, j], 4)
    frame["group"] = np.where(group_b, GROUPS[1], GROUPS[0]).astype(object)
    frame["y"] = y
    out = pd.DataFrame(frame)
    for column, rate in MISSING.items():
        gone = rng.uniform(size=n) < rate
        out[column] = out[column].where(
            ~gone, other=None if out[column].dtype == object else np.nan
        )
    return out


def write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description="write the deterministic synthetic data set")
    parser.add_argument("--root", type=Path, default=Path(), help="project root (default: .)")
    parser.add_argument("--rows", type=int, help="override data.n_rows")
    parser.add_argument("--seed", type=int, help="override data.seed")
    parser.add_argument("--out", type=Path, help="override data.path")
    args = parser.parse_args(list(argv))
    params = Params.load(args.root)
    n_rows = args.rows or int(params.read("data.n_rows"))
    seed = int(params.read("data.seed")) if args.seed is None else args.seed
    out = args.out or params.root / params.read("data.path")
    started = time.perf_counter()
    print(f"generate-data: {n_rows} rows, seed {seed}", flush=True)
    frame = generate(n_rows, seed)
    print(f"generate-data: writing {out}", flush=True)
    write(frame, out)
    print(
        f"generate-data: {len(frame)} rows x {frame.shape[1]} columns, "
        f"positive rate {frame['y'].mean():.3f}, {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    return 0
