"""Turn raw text columns into numbers, with the parsers the service uses (one source of truth).

``"($12,000)"`` → -12000.0, ``"$12,000"`` → 12000.0, ``"67%"`` → 67.0, empty → missing. A value
that cannot be parsed raises ``CleaningError`` naming the column, the value and the row: a
malformed value is a data bug to fix upstream, never a silent NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..config import UserError
from ..features import (
    ASCII_SPACE,
    FieldError,
    is_blank,
    parse_money,
    parse_number,
    parse_percent,
    preview,
)
from .contract import Contract


class CleaningError(UserError, FieldError):
    """A raw value that does not parse: the column, the row, and the value itself."""

    def __init__(self, column: str, value: Any, row: int, reason: str):
        self.column, self.value, self.reason = column, value, reason
        shown = preview(value) if isinstance(value, str) else repr(value)
        super().__init__(column, f"cannot clean {shown} ({reason})", row)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and is_blank(value)


def _undeclared_kind(text: str) -> str:
    """For a value a plain-number column cannot read: the fix, if it is money or a percentage."""
    for kind, parse in (("money", parse_money), ("percent", parse_percent)):
        try:
            parse(text)
        except ValueError:
            continue
        return f"; it looks like {kind}: add the column to contract.{kind} in params.yaml"
    return ""


def _convert(
    column: str, values: pd.Series, parse: Callable[[str], float], *, hint: bool = False
) -> pd.Series:
    """Parse text values (numbers pass through); missing stays NaN, anything else raises.

    With ``hint``, a value that fails says whether it reads as money or a percentage (a column
    the contract forgot to declare)."""
    out = np.empty(len(values), dtype="float64")
    for row, value in enumerate(values.tolist()):
        if _is_missing(value):
            out[row] = np.nan
        elif isinstance(value, str):
            try:
                out[row] = parse(value)
            except ValueError as exc:
                reason = str(exc) + (_undeclared_kind(value) if hint else "")
                raise CleaningError(column, value, row, reason) from None
        elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool
        ):
            out[row] = float(value)
        else:
            raise CleaningError(column, value, row, f"unexpected type {type(value).__name__}")
    return pd.Series(out, index=values.index, name=column)


def _categorical(values: pd.Series) -> pd.Series:
    """Strip whitespace; empty text becomes missing. Categories are checked by the contract."""
    cleaned = [None if _is_missing(v) else str(v).strip() for v in values.tolist()]
    return pd.Series(cleaned, index=values.index, name=values.name, dtype="object")


# The spellings of a binary label that files and databases produce (a CSV column holding both
# "1" and "True" is read as text; a SQL BOOLEAN arrives as bool).
_LABELS = {"0": 0, "1": 1, "false": 0, "true": 1, "0.0": 0, "1.0": 1}


def _label(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, str):
        return _LABELS.get(value.strip(ASCII_SPACE).lower(), value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return int(value)
    return value  # missing or not a label: left for the contract to report with its row


def _target(values: pd.Series) -> pd.Series:
    """0/1 labels as int64; a value that is no label stays as it is, for ``validate`` to name."""
    if pd.api.types.is_integer_dtype(values) and not values.isna().any():
        return values
    labels = [_label(v) for v in values.tolist()]
    if all(isinstance(v, int) for v in labels):
        return pd.Series(labels, index=values.index, name=values.name, dtype="int64")
    return pd.Series(labels, index=values.index, name=values.name, dtype="object")


def clean_frame(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Clean every contract column present in ``frame``; other columns are left as they are.

    Numeric feature columns that arrive as text (e.g. from a SQL ``TEXT`` column) are parsed too.
    """
    out = frame.copy()
    if contract.target in out:
        out[contract.target] = _target(out[contract.target])
    for column in contract.money:
        if column in out:
            out[column] = _convert(column, out[column], parse_money)
    for column in contract.percent:
        if column in out:
            out[column] = _convert(column, out[column], parse_percent)
    for column in contract.categorical:
        if column in out:
            out[column] = _categorical(out[column])
    if contract.group and contract.group in out:
        out[contract.group] = _categorical(out[contract.group])
    for column in contract.feature_columns(out.columns):
        if contract.kind(column) == "numeric" and not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = _convert(column, out[column], parse_number, hint=True)
    return out
