"""The data contract: parsed from params.yaml, and every violation reported by `validate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.data.cleaning import clean_frame
from {{ cookiecutter.package_name }}.data.contract import Contract, SchemaError, validate
from {{ cookiecutter.package_name }}.data.synthetic import generate

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
CONTRACT = Contract.from_params({**PARAMS["contract"], "min_rows": 100})


@pytest.fixture
def clean() -> pd.DataFrame:
    return clean_frame(generate(400, seed=3), CONTRACT)


def problems(frame: pd.DataFrame, contract: Contract = CONTRACT) -> list[str]:
    with pytest.raises(SchemaError) as caught:
        validate(frame, contract)
    return caught.value.problems


def test_clean_synthetic_data_pass(clean: pd.DataFrame) -> None:
    validate(clean, CONTRACT)


def test_features_follow_the_contract() -> None:
    columns = ["id", "x10", "x2", "x12", "x5", "x62", "group", "y"]
    assert CONTRACT.feature_columns(columns) == ["x2", "x5", "x10", "x12", "x62"]
    kinds = {f.name: f.kind for f in CONTRACT.features_for(columns)}
    assert kinds == {
        "x2": "numeric",
        "x5": "categorical",
        "x10": "numeric",
        "x12": "money",
        "x62": "percent",
    }


def test_unknown_contract_key_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        Contract.from_params({**PARAMS["contract"], "colour": "red"})


def test_missing_column(clean: pd.DataFrame) -> None:
    assert problems(clean.drop(columns=["x62"])) == ["column 'x62' is missing"]


def test_unknown_category_names_column_value_and_row(clean: pd.DataFrame) -> None:
    clean.loc[7, "x5"] = "Funday"
    [problem] = problems(clean)
    assert "'x5'" in problem and "'Funday' (row 7)" in problem


def test_out_of_range(clean: pd.DataFrame) -> None:
    clean.loc[2, "x62"] = 140.0
    [problem] = problems(clean)
    assert "'x62'" in problem and "outside [0.0, 100.0]" in problem and "140.0 (row 2)" in problem


def test_text_left_in_a_numeric_column(clean: pd.DataFrame) -> None:
    clean["x3"] = clean["x3"].astype(object)
    clean.loc[0, "x3"] = "oops"
    [problem] = problems(clean)
    assert "'x3' must be numeric" in problem


def test_target_and_group_and_id(clean: pd.DataFrame) -> None:
    clean.loc[0, "y"] = 2
    clean.loc[1, "group"] = "group_z"
    clean.loc[2, "id"] = clean.loc[3, "id"]
    found = problems(clean)
    assert len(found) == 3
    assert any("target 'y' must be 0 or 1" in p for p in found)
    assert any("'group'" in p and "'group_z'" in p for p in found)
    assert any("id column 'id' is not unique" in p for p in found)


def test_too_many_missing_values_and_infinity(clean: pd.DataFrame) -> None:
    clean.loc[: len(clean) // 2, "x7"] = np.nan
    clean.loc[5, "x8"] = np.inf
    found = problems(clean)
    assert any("'x7'" in p and "above contract.max_missing" in p for p in found)
    assert any("'x8': infinite values" in p for p in found)


def test_unexpected_column_and_too_few_rows(clean: pd.DataFrame) -> None:
    small = clean.head(50).assign(comment="hi")
    found = problems(small)
    assert any("unexpected column(s) ['comment']" in p for p in found)
    assert any("50 rows" in p for p in found)


def test_message_lists_every_problem(clean: pd.DataFrame) -> None:
    clean.loc[0, "x31"] = "mars"
    clean.loc[0, "x62"] = -1.0
    with pytest.raises(SchemaError, match=r"2 problem\(s\)"):
        validate(clean, CONTRACT)
