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
        categorical = {
            str(name): tuple(str(c) for c in categories)
            for name, categories in (block.get("categorical") or {}).items()
        }
        for name, categories in categorical.items():
            repeated = sorted({c for c in categories if categories.count(c) > 1})
            if repeated or "" in categories:
                what = f"{repeated} appear more than once" if repeated else '"" is a missing value'
                raise ContractError(
                    f"params.yaml contract.categorical.{name}: {what}; list each category once"
                )
        return cls(
            target=str(block["target"]),
            features=features,
            id=block.get("id"),
            group=block.get("group"),
            groups=tuple(str(g) for g in block.get("groups") or ()),
            money=tuple(block.get("money") or ()),
            percent=tuple(block.get("percent") or ()),
            categorical=categorical,
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


# --- the checks: observed per frame or partition, added up, then judged ------------------------
#
# `validate` checks one frame. A table too large for one frame (SQL in chunks, a Parquet lake on
# Dask) is observed chunk by chunk: `observe` reduces a chunk to counts and first examples, which
# `Observation.then` adds up in row order, and `problems` turns the total into the very messages
# `validate` gives for the whole frame. Rows are counted from the first row of the source.

Example = tuple[Any, int]  # a value and the row it is in


def _first(values: pd.Series, mask: Any) -> Example | None:
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    if not len(hits):
        return None
    value = values.iloc[int(hits[0])]
    return (value.item() if isinstance(value, np.generic) else value), int(hits[0])


def _shift(example: Example | None, rows: int) -> Example | None:
    return None if example is None else (example[0], example[1] + rows)


def _earliest(
    first: dict[str, Any], later: dict[str, Any], rows: int, shift: Any
) -> dict[str, Any]:
    merged = dict(first)
    for column, value in later.items():
        if column not in merged:
            merged[column] = shift(value, rows)
    return merged


@dataclass(frozen=True)
class Observation:
    """What the contract checks need to know about some rows: counts and the first example of
    each violation. Adds up across chunks (``then``), so a table is judged without being held."""

    columns: tuple[str, ...]
    rows: int = 0
    id_missing: int = 0
    target_missing: int = 0
    target_first_missing: int | None = None
    target_bad: Example | None = None
    target_classes: frozenset[Any] = frozenset()
    group_missing: int = 0
    group_bad: Example | None = None
    missing: dict[str, int] = field(default_factory=dict)
    bad_category: dict[str, Example] = field(default_factory=dict)
    not_numeric: dict[str, str] = field(default_factory=dict)
    infinite: dict[str, Example] = field(default_factory=dict)
    outside: dict[str, tuple[int, Example]] = field(default_factory=dict)

    def then(self, later: Observation) -> Observation:
        """These rows followed by ``later``'s: counts add up, the earliest example is kept."""
        rows = self.rows
        missing = dict(self.missing)
        for column, count in later.missing.items():
            missing[column] = missing.get(column, 0) + count
        outside = {
            column: (count + later.outside.get(column, (0, None))[0], example)
            for column, (count, example) in self.outside.items()
        }
        for column, (count, example) in later.outside.items():
            outside.setdefault(column, (count, (example[0], example[1] + rows)))
        first_missing = self.target_first_missing
        if first_missing is None and later.target_first_missing is not None:
            first_missing = later.target_first_missing + rows
        return Observation(
            columns=self.columns,
            rows=rows + later.rows,
            id_missing=self.id_missing + later.id_missing,
            target_missing=self.target_missing + later.target_missing,
            target_first_missing=first_missing,
            target_bad=self.target_bad or _shift(later.target_bad, rows),
            target_classes=self.target_classes | later.target_classes,
            group_missing=self.group_missing + later.group_missing,
            group_bad=self.group_bad or _shift(later.group_bad, rows),
            missing=missing,
            bad_category=_earliest(self.bad_category, later.bad_category, rows, _shift),
            not_numeric=_earliest(self.not_numeric, later.not_numeric, rows, lambda v, _: v),
            infinite=_earliest(self.infinite, later.infinite, rows, _shift),
            outside=outside,
        )


def observe(frame: pd.DataFrame, contract: Contract) -> Observation:
    """The contract-relevant counts and first examples of a cleaned frame (or one chunk of it)."""
    columns = tuple(frame.columns)
    found: dict[str, Any] = {"columns": columns, "rows": len(frame)}
    if contract.id and contract.id in frame.columns:
        found["id_missing"] = int(frame[contract.id].isna().sum())
    if contract.target in frame.columns:
        target = frame[contract.target]
        absent = target.isna()
        found["target_missing"] = int(absent.sum())
        if found["target_missing"]:
            found["target_first_missing"] = int(np.flatnonzero(absent.to_numpy())[0])
        found["target_bad"] = _first(target, ~absent & ~target.isin([0, 1]))
        found["target_classes"] = frozenset(int(v) for v in target[target.isin([0, 1])].unique())
    if contract.group and contract.group in frame.columns:
        group = frame[contract.group]
        found["group_missing"] = int(group.isna().sum())
        if contract.groups:
            found["group_bad"] = _first(group, group.notna() & ~group.isin(contract.groups))
    features = contract.feature_columns(columns)
    # Whole-frame operations where they can be: a chunk's cost must not grow with its columns.
    missing = {c: int(n) for c, n in frame[features].isna().sum().items()} if features else {}
    bad_category, not_numeric, infinite, outside = {}, {}, {}, {}
    numeric = []
    for column in features:
        values = frame[column]
        if contract.kind(column) == "categorical":
            bad = values.notna() & ~values.isin(contract.categorical[column])
            if (example := _first(values, bad)) is not None:
                bad_category[column] = example
        elif not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            not_numeric[column] = str(values.dtype)
        else:
            numeric.append(column)
    numbers = frame[numeric].to_numpy(dtype="float64") if numeric else np.empty((len(frame), 0))
    infinite_cells = np.isinf(numbers)
    for position in np.flatnonzero(infinite_cells.any(axis=0)):
        column = numeric[position]
        infinite[column] = _first(frame[column], infinite_cells[:, position])
    for position, column in enumerate(numeric):
        low, high = contract.ranges.get(column, (None, None))
        if low is not None or high is not None:
            cells = numbers[:, position]
            low_v = -math.inf if low is None else low
            high_v = math.inf if high is None else high
            with np.errstate(invalid="ignore"):
                beyond = ~np.isnan(cells) & ((cells < low_v) | (cells > high_v))
            if (example := _first(frame[column], beyond)) is not None:
                outside[column] = (int(beyond.sum()), example)
    return Observation(
        **found,
        missing=missing,
        bad_category=bad_category,
        not_numeric=not_numeric,
        infinite=infinite,
        outside=outside,
    )


def first_duplicate(ids: pd.Series) -> Example | None:
    """The first id that an earlier row already has, and its row."""
    return _first(ids, ids.duplicated())


def _shown(example: Example) -> str:
    return f"e.g. {example[0]!r} (row {example[1]})"


def problems(seen: Observation, contract: Contract, duplicate: Example | None = None) -> list[str]:
    """Every violation in ``seen`` (and the first ``duplicate`` id, found by the caller: it needs
    every id at once), worded as ``validate`` words them."""
    found: list[str] = []
    columns = list(seen.columns)
    required = [*contract.reserved, *contract.money, *contract.percent, *contract.categorical]
    required += [c for c in contract.listed or () if c not in required]
    for column in required:
        if column not in columns:
            found.append(f"column {column!r} is missing")
    features = contract.feature_columns(columns)
    if not features and contract.listed is None:
        found.append(
            f"contract.features {contract.features!r} matches no column of the data "
            f"(columns: {columns[:8]}{' ...' if len(columns) > 8 else ''}): fix the glob, or "
            "list the columns (`contract init` writes the list)"
        )
    allowed = set(contract.reserved) | set(features)
    unexpected = [c for c in columns if c not in allowed]
    if unexpected:
        how = "listed in" if contract.listed is not None else "matching"
        found.append(
            f"unexpected column(s) {unexpected}: not {how} contract.features nor "
            "id/target/group; add them there or drop them from the data"
        )
    undeclared = [
        c
        for c in [*contract.money, *contract.percent, *contract.categorical]
        if c in columns and c not in features
    ]
    if undeclared:
        found.append(
            f"column(s) {undeclared} are declared money/percent/categorical but are not "
            "contract.features: add them to contract.features"
        )
    if seen.rows < contract.min_rows:
        found.append(f"{seen.rows} rows, the contract requires at least {contract.min_rows}")

    if contract.id and contract.id in columns:
        if seen.id_missing:
            found.append(f"id column {contract.id!r} has missing values")
        elif duplicate is not None:
            found.append(f"id column {contract.id!r} is not unique, {_shown(duplicate)}")

    if contract.target in columns:
        if seen.target_missing:
            found.append(
                f"target {contract.target!r} has {seen.target_missing} missing values, "
                f"the first in row {seen.target_first_missing}"
            )
        elif seen.target_bad is not None:
            found.append(f"target {contract.target!r} must be 0 or 1, {_shown(seen.target_bad)}")
        elif len(seen.target_classes) < 2:
            found.append(f"target {contract.target!r} has a single class")

    if contract.group and contract.group in columns:
        if seen.group_missing:
            found.append(f"group column {contract.group!r} has missing values")
        elif seen.group_bad is not None:
            found.append(
                f"group column {contract.group!r}: values outside {list(contract.groups)}, "
                f"{_shown(seen.group_bad)}"
            )

    for column in features:
        share = seen.missing.get(column, 0) / seen.rows if seen.rows else 0.0
        if share > contract.max_missing:
            found.append(
                f"column {column!r}: {share:.1%} missing, above contract.max_missing "
                f"{contract.max_missing:.1%}"
            )
        if column in seen.bad_category:
            found.append(
                f"column {column!r}: categories outside {list(contract.categorical[column])}, "
                f"{_shown(seen.bad_category[column])}"
            )
        if column in seen.not_numeric:
            found.append(
                f"column {column!r} must be numeric after cleaning, "
                f"got dtype {seen.not_numeric[column]}"
            )
            continue
        if column in seen.infinite:
            found.append(f"column {column!r}: infinite values, {_shown(seen.infinite[column])}")
        if column in seen.outside:
            count, example = seen.outside[column]
            low, high = contract.ranges[column]
            found.append(
                f"column {column!r}: {count} value(s) outside [{low}, {high}], {_shown(example)}"
            )
    return found


def judge(seen: Observation, contract: Contract, duplicate: Example | None = None) -> None:
    """Raise ``SchemaError`` listing every problem of ``problems``, if there is any."""
    found = problems(seen, contract, duplicate)
    if found:
        raise SchemaError(found)


def validate(frame: pd.DataFrame, contract: Contract) -> None:
    """Check a cleaned frame against the contract; raise ``SchemaError`` listing every problem."""
    seen = observe(frame, contract)
    duplicate = None
    if contract.id and contract.id in frame.columns and not seen.id_missing:
        duplicate = first_duplicate(frame[contract.id])
    judge(seen, contract, duplicate)
