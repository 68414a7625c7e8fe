"""The data contract: which columns exist, their kinds, ranges and categories.

It is declared in the ``contract`` block of ``params.yaml`` and enforced by ``prepare`` (after
cleaning) with ``validate``, which lists every violation and fails the stage. The same contract
builds the model's ``Feature`` list, so the feature schema shipped to the service follows it.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config import UserError
from ..features import Feature


class ContractError(UserError, ValueError):
    """The ``contract`` block of params.yaml itself is malformed."""


class SchemaError(UserError, ValueError):
    """The data break the contract; ``problems`` lists every violation found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"data contract violated ({len(problems)} problem(s)):\n{listing}")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort ``x2`` before ``x10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


@dataclass(frozen=True)
class Contract:
    target: str
    # A glob over column names ("x*"), or the explicit list of feature columns (what
    # `contract init` writes: real column names rarely share a prefix, and may hold spaces).
    features: str | tuple[str, ...] = "*"
    id: str | None = None
    group: str | None = None
    groups: tuple[str, ...] = ()
    money: tuple[str, ...] = ()
    percent: tuple[str, ...] = ()
    categorical: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    max_missing: float = 0.1
    min_rows: int = 1

    @classmethod
    def from_params(cls, block: Mapping[str, Any]) -> Contract:
        known = set(cls.__dataclass_fields__)
        unknown = set(block) - known
        if unknown:
            raise ContractError(
                f"params.yaml contract: unknown keys {sorted(unknown)}; known: {sorted(known)}"
            )
        ranges = {}
        for column, bounds in (block.get("ranges") or {}).items():
            if not isinstance(bounds, list | tuple) or len(bounds) != 2:
                raise ContractError(f"params.yaml contract.ranges.{column}: expected [low, high]")
            ranges[str(column)] = tuple(None if b is None else float(b) for b in bounds)
        if "target" not in block or not block["target"]:
            raise ContractError("params.yaml contract: no `target`; name the 0/1 label column")
        features = block.get("features", "*")
        if isinstance(features, list | tuple):
            features = tuple(str(name) for name in features)
            if not features:
                raise ContractError("params.yaml contract.features: the list is empty")
        elif not isinstance(features, str) or not features:
            raise ContractError(
                "params.yaml contract.features: expected a glob such as 'x*' or a list of columns"
            )
        return cls(
            target=str(block["target"]),
            features=features,
            id=block.get("id"),
            group=block.get("group"),
            groups=tuple(str(g) for g in block.get("groups") or ()),
            money=tuple(block.get("money") or ()),
            percent=tuple(block.get("percent") or ()),
            categorical={
                str(name): tuple(str(c) for c in categories)
                for name, categories in (block.get("categorical") or {}).items()
            },
            ranges=ranges,
            max_missing=float(block.get("max_missing", 0.1)),
            min_rows=int(block.get("min_rows", 1)),
        )

    @property
    def reserved(self) -> list[str]:
        """Columns that are never model inputs."""
        return [c for c in (self.id, self.target, self.group) if c]

    def kind(self, column: str) -> str:
        if column in self.money:
            return "money"
        if column in self.percent:
            return "percent"
        if column in self.categorical:
            return "categorical"
        return "numeric"

    @property
    def listed(self) -> tuple[str, ...] | None:
        """The feature columns when ``features`` lists them, ``None`` for a glob."""
        return None if isinstance(self.features, str) else self.features

    def feature_columns(self, columns: Iterable[str]) -> list[str]:
        """Model inputs among ``columns``: the listed ones in the contract's order, or those
        matching the glob in natural order (x2 before x10)."""
        reserved = set(self.reserved)
        if self.listed is not None:
            present = set(columns)
            return [c for c in self.listed if c in present and c not in reserved]
        chosen = [c for c in columns if c not in reserved and fnmatch.fnmatchcase(c, self.features)]
        return sorted(chosen, key=natural_key)

    def features_for(self, columns: Iterable[str]) -> list[Feature]:
        """The ``Feature`` list for the feature schema shipped with the model."""
        return [
            Feature(name=c, kind=self.kind(c), categories=self.categorical.get(c, ()))
            for c in self.feature_columns(columns)
        ]

    def text_columns(self) -> list[str]:
        """Columns read as text from the raw source (cleaned or checked against categories)."""
        columns = [*self.money, *self.percent, *self.categorical]
        return [*columns, self.group] if self.group else columns

    def label_columns(self) -> list[str]:
        """Columns that hold labels after cleaning (categoricals and the group): the prepared
        splits are read back with these as text."""
        return [*self.categorical, self.group] if self.group else list(self.categorical)


def _example(values: pd.Series, mask: pd.Series) -> str:
    position = int(np.flatnonzero(mask.to_numpy())[0])
    value = values.iloc[position]
    value = value.item() if isinstance(value, np.generic) else value
    return f"e.g. {value!r} (row {position})"


def validate(frame: pd.DataFrame, contract: Contract) -> None:
    """Check a cleaned frame against the contract; raise ``SchemaError`` listing every problem."""
    problems: list[str] = []
    columns = list(frame.columns)
    required = [*contract.reserved, *contract.money, *contract.percent, *contract.categorical]
    required += [c for c in contract.listed or () if c not in required]
    for column in required:
        if column not in frame.columns:
            problems.append(f"column {column!r} is missing")
    features = contract.feature_columns(columns)
    if not features and contract.listed is None:
        problems.append(
            f"contract.features {contract.features!r} matches no column of the data "
            f"(columns: {columns[:8]}{' ...' if len(columns) > 8 else ''}): fix the glob, or "
            "list the columns (`contract init` writes the list)"
        )
    allowed = set(contract.reserved) | set(features)
    unexpected = [c for c in columns if c not in allowed]
    if unexpected:
        how = "listed in" if contract.listed is not None else "matching"
        problems.append(
            f"unexpected column(s) {unexpected}: not {how} contract.features nor "
            "id/target/group; add them there or drop them from the data"
        )
    undeclared = [
        c
        for c in [*contract.money, *contract.percent, *contract.categorical]
        if c in frame.columns and c not in features
    ]
    if undeclared:
        problems.append(
            f"column(s) {undeclared} are declared money/percent/categorical but are not "
            "contract.features: add them to contract.features"
        )
    if len(frame) < contract.min_rows:
        problems.append(f"{len(frame)} rows, the contract requires at least {contract.min_rows}")

    if contract.id and contract.id in frame.columns:
        ids = frame[contract.id]
        if ids.isna().any():
            problems.append(f"id column {contract.id!r} has missing values")
        elif ids.duplicated().any():
            problems.append(
                f"id column {contract.id!r} is not unique, {_example(ids, ids.duplicated())}"
            )

    if contract.target in frame.columns:
        target = frame[contract.target]
        if target.isna().any():
            problems.append(
                f"target {contract.target!r} has {int(target.isna().sum())} missing values, "
                f"the first in row {int(np.flatnonzero(target.isna().to_numpy())[0])}"
            )
        else:
            bad = ~target.isin([0, 1])
            if bad.any():
                problems.append(
                    f"target {contract.target!r} must be 0 or 1, {_example(target, bad)}"
                )
            elif target.nunique() < 2:
                problems.append(f"target {contract.target!r} has a single class")

    if contract.group and contract.group in frame.columns:
        group = frame[contract.group]
        if group.isna().any():
            problems.append(f"group column {contract.group!r} has missing values")
        elif contract.groups:
            bad = ~group.isin(contract.groups)
            if bad.any():
                problems.append(
                    f"group column {contract.group!r}: values outside {list(contract.groups)}, "
                    f"{_example(group, bad)}"
                )

    for column in contract.feature_columns(columns):
        values = frame[column]
        missing = float(values.isna().mean()) if len(values) else 0.0
        if missing > contract.max_missing:
            problems.append(
                f"column {column!r}: {missing:.1%} missing, above contract.max_missing "
                f"{contract.max_missing:.1%}"
            )
        if contract.kind(column) == "categorical":
            allowed_values = contract.categorical[column]
            bad = values.notna() & ~values.isin(allowed_values)
            if bad.any():
                problems.append(
                    f"column {column!r}: categories outside {list(allowed_values)}, "
                    f"{_example(values, bad)}"
                )
            continue
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            problems.append(
                f"column {column!r} must be numeric after cleaning, got dtype {values.dtype}"
            )
            continue
        numbers = values.astype("float64")
        infinite = np.isinf(numbers)
        if infinite.any():
            problems.append(f"column {column!r}: infinite values, {_example(values, infinite)}")
        low, high = contract.ranges.get(column, (None, None))
        if low is not None or high is not None:
            low_v = -math.inf if low is None else low
            high_v = math.inf if high is None else high
            outside = numbers.notna() & ((numbers < low_v) | (numbers > high_v))
            if outside.any():
                problems.append(
                    f"column {column!r}: {int(outside.sum())} value(s) outside [{low}, {high}], "
                    f"{_example(values, outside)}"
                )
    if problems:
        raise SchemaError(problems)
