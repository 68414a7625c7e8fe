"""Cleaning: the seed's cases, missing values, and malformed values that must raise."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data.cleaning import CleaningError, clean_frame
from {{ cookiecutter.package_name }}.data.contract import Contract, SchemaError, validate

CONTRACT = Contract(
    target="y",
    features="x*",
    money=("x12",),
    percent=("x62",),
    categorical={"x5": ("Monday", "Tuesday")},
)


def test_seed_cases() -> None:
    ugly = pd.DataFrame({"x12": ["($12,000)"], "x62": ["67%"]})
    clean = pd.DataFrame({"x12": [-12000.0], "x62": [67.0]})
    pd.testing.assert_frame_equal(clean_frame(ugly, CONTRACT), clean)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$12,000", 12000.0),
        ("($12,000)", -12000.0),
        ("$1,234.56", 1234.56),
        ("(1,580.06)", -1580.06),
        ("-$7.50", -7.5),
        ("$0.99", 0.99),
        ("12000", 12000.0),
    ],
)
def test_money(text: str, expected: float) -> None:
    out = clean_frame(pd.DataFrame({"x12": [text]}), CONTRACT)
    assert out["x12"].tolist() == [expected]


@pytest.mark.parametrize(
    ("text", "expected"), [("67%", 67.0), ("0%", 0.0), ("12.5%", 12.5), ("100 %", 100.0)]
)
def test_percent(text: str, expected: float) -> None:
    assert clean_frame(pd.DataFrame({"x62": [text]}), CONTRACT)["x62"].tolist() == [expected]


def test_missing_values_stay_missing() -> None:
    frame = pd.DataFrame({"x12": ["$1.00", None, "", "  "], "x62": [np.nan, "5%", None, "6%"]})
    out = clean_frame(frame, CONTRACT)
    assert [math.isnan(v) for v in out["x12"]] == [False, True, True, True]
    assert [math.isnan(v) for v in out["x62"]] == [True, False, True, False]
    assert out["x12"].dtype == "float64" and out["x62"].dtype == "float64"


@pytest.mark.parametrize(
    ("column", "values", "bad", "row"),
    [
        ("x12", ["$1.00", "$12,00"], "$12,00", 1),
        ("x12", ["$1.00", "$2.00", "($5"], "($5", 2),
        ("x12", ["(-$5)"], "(-$5)", 0),
        ("x12", ["twelve dollars"], "twelve dollars", 0),
        ("x62", ["67%", "67"], "67", 1),
        ("x62", ["%"], "%", 0),
        ("x3", ["1.5", "n/a"], "n/a", 1),
    ],
)
def test_malformed_value_raises_with_column_value_and_row(column, values, bad, row) -> None:
    with pytest.raises(CleaningError) as caught:
        clean_frame(pd.DataFrame({column: values}), CONTRACT)
    error = caught.value
    assert (error.column, error.value, error.row) == (column, bad, row)
    assert repr(column) in str(error) and repr(bad) in str(error) and f"row {row}" in str(error)


def test_numbers_pass_through_and_categoricals_are_stripped() -> None:
    frame = pd.DataFrame({"x12": [5.0, None], "x5": [" Monday", ""], "x1": [1.0, 2.0]})
    out = clean_frame(frame, CONTRACT)
    assert out["x12"].tolist()[0] == 5.0
    assert out["x5"].tolist() == ["Monday", None]
    assert out["x1"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "labels",
    [[0, 1, 1], [True, False, True], ["1", "0", "True"], [" true", "FALSE", "1"], [1.0, 0.0, 1.0]],
)
def test_binary_labels_in_any_common_spelling_become_0_and_1(labels) -> None:
    contract = Contract(target="y")
    out = clean_frame(pd.DataFrame({"y": labels}, dtype=object), contract)
    assert out["y"].dtype == "int64" and out["y"].tolist() == [
        1 if str(v).strip().lower() in {"1", "1.0", "true"} else 0 for v in labels
    ]


@pytest.mark.parametrize(
    ("labels", "row", "shown"),
    [([1, 0, "yes"], 2, "'yes'"), (["1", "True", "0", 2], 3, "2"), (["0", "1", None, "1"], 2, "")],
)
def test_the_contract_names_the_row_of_a_bad_label(labels, row, shown) -> None:
    contract = Contract(target="y")
    frame = clean_frame(pd.DataFrame({"y": labels, "x1": 1.0}, dtype=object), contract)
    with pytest.raises(SchemaError) as caught:
        validate(frame, contract)
    assert f"row {row}" in str(caught.value) and shown in str(caught.value)
