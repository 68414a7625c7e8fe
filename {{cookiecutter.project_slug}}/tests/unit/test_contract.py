"""The data contract: parsed from params.yaml, and every violation reported by `validate`.

The checks run on a contract unlike the synthetic data's (names with spaces and mixed case, an
explicit feature list), with rows made from it, so they hold for any team's contract.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.data.cleaning import CleaningError, clean_frame
from {{ cookiecutter.package_name }}.data.contract import Contract, ContractError, SchemaError, validate
from {{ cookiecutter.package_name }}.data.sample import feature_names, sample

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
BLOCK = {
    "id": "Order Ref",
    "target": "Is Fraud",
    "group": "Store Region",
    "groups": ["East", "West"],
    "features": ["Basket Total", "Items", "Card Fee %", "Weekday", "Hour of Day"],
    "money": ["Basket Total"],
    "percent": ["Card Fee %"],
    "categorical": {"Weekday": ["Mon", "Tue", "Wed"]},
    "ranges": {"Card Fee %": [0, 5], "Hour of Day": [0, 23]},
    "max_missing": 0.2,
    "min_rows": 100,
}
CONTRACT = Contract.from_params(BLOCK)


@pytest.fixture
def clean() -> pd.DataFrame:
    return clean_frame(sample(CONTRACT, 400, seed=3), CONTRACT)


def problems(frame: pd.DataFrame, contract: Contract = CONTRACT) -> list[str]:
    with pytest.raises(SchemaError) as caught:
        validate(frame, contract)
    return caught.value.problems


def test_rows_made_from_the_contract_in_params_yaml_pass_it() -> None:
    contract = Contract.from_params({**PARAMS["contract"], "min_rows": 100})
    validate(clean_frame(sample(contract, 300, seed=1), contract), contract)


def test_rows_made_from_a_contract_pass_it(clean: pd.DataFrame) -> None:
    validate(clean, CONTRACT)
    assert clean["Is Fraud"].isin([0, 1]).all() and clean["Is Fraud"].nunique() == 2
    assert clean["Card Fee %"].between(0, 5).all()


def test_listed_features_keep_their_order_and_kinds() -> None:
    columns = ["Is Fraud", "Hour of Day", "Weekday", "Order Ref", "Basket Total", "Items"]
    assert CONTRACT.feature_columns(columns) == ["Basket Total", "Items", "Weekday", "Hour of Day"]
    kinds = {f.name: f.kind for f in CONTRACT.features_for([*columns, "Card Fee %"])}
    assert kinds == {
        "Basket Total": "money",
        "Items": "numeric",
        "Card Fee %": "percent",
        "Weekday": "categorical",
        "Hour of Day": "numeric",
    }


def test_glob_features_sort_naturally() -> None:
    contract = Contract(target="y", features="f*")
    assert contract.feature_columns(["y", "f10", "f2", "g1"]) == ["f2", "f10"]


def test_a_glob_matching_no_column_says_how_to_fix_it() -> None:
    contract = Contract(target="y", features="feat_*")
    frame = pd.DataFrame({"y": [0, 1], "Amount": [1.0, 2.0]})
    found = problems(frame, contract)
    assert any("matches no column" in p and "list the columns" in p for p in found)


def test_bad_contract_blocks_are_refused() -> None:
    with pytest.raises(ContractError, match="unknown keys \\['colour'\\]"):
        Contract.from_params({**BLOCK, "colour": "red"})
    with pytest.raises(ContractError, match="no `target`"):
        Contract.from_params({k: v for k, v in BLOCK.items() if k != "target"})
    with pytest.raises(ContractError, match="list is empty"):
        Contract.from_params({**BLOCK, "features": []})
    with pytest.raises(ContractError, match=r"Weekday: \['Mon'\] appear more than once"):
        Contract.from_params({**BLOCK, "categorical": {"Weekday": ["Mon", "Tue", "Mon"]}})
    with pytest.raises(ContractError, match='Weekday: "" is a missing value'):
        Contract.from_params({**BLOCK, "categorical": {"Weekday": ["Mon", ""]}})


def test_missing_listed_column(clean: pd.DataFrame) -> None:
    assert problems(clean.drop(columns=["Items"])) == ["column 'Items' is missing"]


def test_unknown_category_names_column_value_and_row(clean: pd.DataFrame) -> None:
    clean.loc[7, "Weekday"] = "Funday"
    [problem] = problems(clean)
    assert "'Weekday'" in problem and "'Funday' (row 7)" in problem


def test_out_of_range(clean: pd.DataFrame) -> None:
    clean.loc[2, "Card Fee %"] = 40.0
    [problem] = problems(clean)
    assert "'Card Fee %'" in problem and "outside [0.0, 5.0]" in problem
    assert "40.0 (row 2)" in problem


def test_text_left_in_a_numeric_column(clean: pd.DataFrame) -> None:
    clean["Items"] = clean["Items"].astype(object)
    clean.loc[0, "Items"] = "oops"
    [problem] = problems(clean)
    assert "'Items' must be numeric" in problem


def test_target_and_group_and_id(clean: pd.DataFrame) -> None:
    clean.loc[0, "Is Fraud"] = 2
    clean.loc[1, "Store Region"] = "North"
    clean.loc[2, "Order Ref"] = clean.loc[3, "Order Ref"]
    found = problems(clean)
    assert len(found) == 3
    assert any("target 'Is Fraud' must be 0 or 1" in p for p in found)
    assert any("'Store Region'" in p and "'North'" in p for p in found)
    assert any("id column 'Order Ref' is not unique" in p for p in found)


def test_too_many_missing_values_and_infinity(clean: pd.DataFrame) -> None:
    clean.loc[: len(clean) // 2, "Items"] = np.nan
    clean.loc[5, "Hour of Day"] = np.inf
    found = problems(clean)
    assert any("'Items'" in p and "above contract.max_missing" in p for p in found)
    assert any("'Hour of Day': infinite values" in p for p in found)


def test_unexpected_column_and_too_few_rows(clean: pd.DataFrame) -> None:
    small = clean.head(50).assign(comment="hi")
    found = problems(small)
    assert any("unexpected column(s) ['comment']" in p and "add them" in p for p in found)
    assert any("50 rows" in p for p in found)


def test_an_undeclared_money_column_names_the_fix() -> None:
    contract = Contract.from_params({**BLOCK, "money": []})
    with pytest.raises(CleaningError, match=r"'Basket Total'.*looks like money.*contract\.money"):
        clean_frame(sample(CONTRACT, 50, seed=2), contract)


def test_message_lists_every_problem(clean: pd.DataFrame) -> None:
    clean.loc[0, "Weekday"] = "Sun"
    clean.loc[0, "Card Fee %"] = -1.0
    with pytest.raises(SchemaError, match=r"2 problem\(s\)"):
        validate(clean, CONTRACT)


def test_rows_from_a_glob_contract_use_its_declared_columns() -> None:
    contract = Contract(target="y", features="x*", money=("x12",), categorical={"x5": ("a", "b")})
    assert feature_names(contract) == ["x12", "x5"]
    with pytest.raises(ContractError, match="list the feature columns"):
        feature_names(Contract(target="y", features="x*"))
