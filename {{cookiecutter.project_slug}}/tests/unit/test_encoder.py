"""features.Encoder on the contract's schema: training (columns) and serving (records) agree.

On params.yaml's contract (rows made from it) and on one unlike the synthetic data's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from {{ cookiecutter.package_name }}.data.cleaning import clean_frame
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.data.sample import sample
from {{ cookiecutter.package_name }}.features import Encoder, Feature, FeatureSchema, FieldError
from {{ cookiecutter.package_name }}.pipeline.matrix import encode

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
TEAM = Contract.from_params(PARAMS["contract"])
CONTRACT = Contract.from_params(
    {
        "target": "Churned",
        "features": ["tenure", "Monthly Fee", "Plan", "Discount", "Region Code", "calls"],
        "money": ["Monthly Fee"],
        "percent": ["Discount"],
        "categorical": {"Plan": ["basic", "plus", "pro"], "Region Code": ["N", "S"]},
        "max_missing": 0.1,
    }
)


@pytest.fixture(scope="module")
def raw():
    return sample(CONTRACT, 300, seed=11)


@pytest.fixture(scope="module")
def schema(raw) -> FeatureSchema:
    return FeatureSchema(features=CONTRACT.features_for(raw.columns), threshold=0.5)


def test_schema_layout(schema: FeatureSchema) -> None:
    assert len(schema.features) == 6
    # 4 one-slot features + one-hot plan (3) and region (2), in the contract's order
    assert schema.n_inputs == 4 + 3 + 2
    assert schema.slot_names() == [
        "tenure", "Monthly Fee", "Plan=basic", "Plan=plus", "Plan=pro", "Discount",
        "Region Code=N", "Region Code=S", "calls",
    ]  # fmt: skip


def test_the_teams_contract_encodes_its_own_rows_both_ways() -> None:
    raw = sample(TEAM, 200, seed=4)
    schema = FeatureSchema(features=TEAM.features_for(raw.columns), threshold=0.5)
    assert len(schema.features) == len(TEAM.feature_columns(raw.columns)) > 0
    records = [
        {k: v for k, v in row.items() if v is not None and v == v}
        for row in raw.to_dict(orient="records")
    ]
    np.testing.assert_array_equal(
        Encoder(schema).encode_records(records), encode(clean_frame(raw, TEAM), schema)
    )


def test_raw_records_and_clean_columns_encode_identically(raw, schema: FeatureSchema) -> None:
    """Serving sends raw strings ("$1,234.56", "67%"); training encodes the cleaned frame."""
    records = [
        {k: v for k, v in row.items() if v is not None and v == v}  # drop missing keys
        for row in raw.to_dict(orient="records")
    ]
    from_records = Encoder(schema).encode_records(records)
    from_columns = encode(clean_frame(raw, CONTRACT), schema)
    assert from_records.dtype == np.float32 and from_records.shape == (300, schema.n_inputs)
    np.testing.assert_array_equal(from_records, from_columns)


def test_missing_values(raw, schema: FeatureSchema) -> None:
    clean = clean_frame(raw, CONTRACT)
    matrix = encode(clean, schema)
    slots = schema.slot_names()
    row = int(np.flatnonzero(clean["Monthly Fee"].isna())[0])
    assert np.isnan(matrix[row, slots.index("Monthly Fee")])  # NaN, imputed inside the model
    row = int(np.flatnonzero(clean["Region Code"].isna())[0])
    region = [i for i, s in enumerate(slots) if s.startswith("Region Code=")]
    assert matrix[row, region].sum() == 0  # categorical: all-zero one-hot


def test_unknown_category_is_an_encoding_error(raw, schema: FeatureSchema) -> None:
    record = {k: v for k, v in raw.iloc[0].items() if v is not None and v == v}
    record["Region Code"] = "W"
    with pytest.raises(FieldError) as caught:
        Encoder(schema).encode_records([raw.iloc[1].to_dict(), record])
    assert caught.value.field == "Region Code" and caught.value.row == 1


@pytest.mark.parametrize("categories", [("a", "b", "a"), ("a", "")])
def test_a_categorical_lists_each_category_once_and_none_empty(categories) -> None:
    # One one-hot slot per category, and "" is a missing value: a schema file edited by hand
    # with a repeat or an empty category is refused when it is read, not served.
    with pytest.raises(ValueError, match="each category once"):
        Feature("day", "categorical", categories=categories)


def test_schema_file_round_trip(schema: FeatureSchema, tmp_path: Path) -> None:
    schema = replace(schema, threshold_policy={"policy": "top_fraction", "top_fraction": 0.25})
    schema.save(tmp_path / "features.json")
    loaded = FeatureSchema.load(tmp_path / "features.json")
    assert loaded.to_dict() == schema.to_dict()
    assert Encoder(loaded).n_inputs == schema.n_inputs


def test_float_columns_take_the_vectorised_path_with_the_same_rules(schema: FeatureSchema) -> None:
    encoder = Encoder(schema)
    n = 4
    columns = {f.name: [f.categories[0] if f.categories else 1.5] * n for f in schema.features}
    as_lists = encoder.encode_columns(columns, n)
    arrays = {k: np.asarray(v) if not isinstance(v[0], str) else v for k, v in columns.items()}
    np.testing.assert_array_equal(encoder.encode_columns(arrays, n), as_lists)

    arrays["tenure"] = np.array([1.0, np.nan, 2.0, 3.0])
    assert np.isnan(encoder.encode_columns(arrays, n)[1, schema.slot_names().index("tenure")])
    arrays["tenure"] = np.array([1.0, 2.0, np.inf, 3.0])
    with pytest.raises(FieldError) as caught:
        encoder.encode_columns(arrays, n)
    assert (caught.value.field, caught.value.row) == ("tenure", 2)
    assert "finite" in str(caught.value)
