"""The ONNX converters of pipeline/converters.py: each optional model library's build_model()
branch converts, and ONNX Runtime gives the library's own probabilities.

A library whose dependency group is not installed is skipped with that reason (pyproject.toml's
default-groups decides which are).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from {{ cookiecutter.package_name }}.features import Feature, FeatureSchema
from {{ cookiecutter.package_name }}.pipeline import converters
from {{ cookiecutter.package_name }}.pipeline.export import parity, to_onnx
from {{ cookiecutter.package_name }}.pipeline.train import (
    ModelLibraryError,
    build_model,
    optional,
    pin_fit_stamps,
)
from {{ cookiecutter.package_name }}.pipeline.trained import describe

from dvc_support import REPO
from model_support import Unconvertible

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
SCHEMA = FeatureSchema(
    tuple(Feature(name, "numeric") for name in ("a", "b", "c", "d")),
    threshold=0.5,
    threshold_policy={"policy": "fixed", "value": 0.5},
)


def rows(n: int = 400, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A non-linear target (an interaction the trees must split on), with missing values."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n, SCHEMA.n_inputs)).astype(np.float32)
    y = ((matrix[:, 0] * matrix[:, 1] > 0) ^ (rng.random(n) < 0.1)).astype("int64")
    matrix[rng.random(matrix.shape) < 0.05] = np.nan
    return matrix, y


@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_each_library_converts_with_the_librarys_own_probabilities(library: str) -> None:
    pytest.importorskip(library, reason=f"{library} is not installed (group not in default-groups)")
    model = build_model({**PARAMS["train"], "model": library})
    matrix, y = rows()
    model.fit(matrix, y)
    report = parity(
        model, to_onnx(model, SCHEMA, 17), SCHEMA, rows(seed=4)[0], PARAMS["export"]["parity_atol"]
    )
    assert report["passed"] and report["decision_mismatches"] == 0, report
    assert describe(model).startswith("SimpleImputer → ")


@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_dense_large_numbers_take_the_same_branches_in_onnx(library: str) -> None:
    """Amounts in the millions sit on neighbouring float32 values, where a split threshold
    rounded to the nearest float32 sends whole groups of rows down the other branch (LightGBM's
    stock conversion differed by up to 0.45 here)."""
    pytest.importorskip(library, reason=f"{library} is not installed (group not in default-groups)")
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(3000, SCHEMA.n_inputs)).astype(np.float32)
    matrix[:, 0] = rng.uniform(1e6, 1.0002e6, len(matrix))  # float32 steps of 0.0625 here
    signal = (matrix[:, 0] - 1.0001e6) / 50 + matrix[:, 1] + rng.normal(size=len(matrix))
    model = build_model({**PARAMS["train"], "model": library})
    model.fit(matrix, (signal > 0).astype("int64"))
    report = parity(model, to_onnx(model, SCHEMA, 17), SCHEMA, matrix, 1e-5)
    assert report["passed"] and report["decision_mismatches"] == 0, report


def test_float32_floor_keeps_every_float32_comparison() -> None:
    below, above = np.float32(1e6), np.nextafter(np.float32(1e6), np.float32(np.inf))
    threshold = (float(below) + float(above)) / 2 + 1e-9  # between them, nearer the upper one
    assert float(np.float32(threshold)) == float(above)  # nearest rounding flips `above`
    floor = converters.float32_floor(threshold)
    for x in (below, above):
        assert (float(x) <= threshold) == (float(x) <= floor)
    assert converters.float32_floor(0.5) == 0.5


@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_a_refit_on_the_same_rows_pickles_to_the_same_bytes(library: str) -> None:
    """What keeps model.pkl and dvc.lock stable across reruns (CatBoost stamps each fit)."""
    pytest.importorskip(library, reason=f"{library} is not installed (group not in default-groups)")
    matrix, y = rows()
    pickled = []
    for _ in range(2):
        model = build_model({**PARAMS["train"], "model": library}).fit(matrix, y)
        pin_fit_stamps(model)
        pickled.append(pickle.dumps(model, protocol=5))
    assert pickled[0] == pickled[1]


def test_an_unconvertible_step_is_named_with_how_to_register_a_converter() -> None:
    matrix, y = rows()
    model = Pipeline([("impute", SimpleImputer()), ("model", Unconvertible())]).fit(matrix, y)
    with pytest.raises(converters.UnsupportedModelError) as caught:
        to_onnx(model, SCHEMA, 17)
    message = str(caught.value)
    assert message.startswith("no ONNX converter for Unconvertible (in SimpleImputer → ")
    assert converters.CUSTOM_CONVERTERS_DOC in message
    assert "pipeline/converters.py" in message
    assert "\n" not in message and "MissingShapeCalculator" not in message


def test_the_estimator_is_described_by_its_steps_class_names() -> None:
    matrix, y = rows()
    inner = ColumnTransformer(
        [("scaled", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), [0, 1])],
        remainder="drop",
    )
    model = Pipeline([("columns", inner), ("model", LogisticRegression())]).fit(matrix, y)
    assert describe(model) == "SimpleImputer → StandardScaler → LogisticRegression"


def test_a_missing_model_library_says_which_group_to_install() -> None:
    with pytest.raises(ModelLibraryError, match=r"'no_such_library'.*default-groups"):
        optional("no_such_library")
