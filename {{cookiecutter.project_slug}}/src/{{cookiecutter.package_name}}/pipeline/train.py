"""DVC stage ``train``: fit ``build_model(params)`` on the training split.

The model sees exactly what the service will feed it: the float32 matrix that
``features.Encoder`` makes from the feature schema (categoricals one-hot, missing values NaN).
The decision threshold is chosen on the validation split (see ``threshold.py``); the feature
schema is built once, with it, and saved with the fitted pipeline in ``models/model.pkl``
(``trained.TrainedModel``).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ..config import Params, UserError, read_split, stage_args
from ..data.contract import Contract
from ..features import Feature, FeatureSchema
from .cluster import dask_client, engine, require_dask_family
from .matrix import encode
from .threshold import choose_threshold, policy_from_params
from .trained import TrainedModel, steps

MODEL_FAMILIES = ("logistic_regression", "gradient_boosting", "lightgbm", "xgboost", "catboost")


class ModelLibraryError(UserError, ValueError):
    """The model family's library is not installed."""


def optional(module: str) -> Any:
    """A model library from its optional dependency group (pyproject.toml), or a clear error."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise ModelLibraryError(
            f"train.model needs {module}, which is not installed: add {module!r} to "
            "default-groups in pyproject.toml ([tool.uv]), then run `make setup`"
        ) from None


# =================================================================================================
# build_model: THE place to change the model. It receives the `train` block of params.yaml and
# returns an unfitted scikit-learn-compatible binary classifier (or pipeline) that takes the
# encoder's float32 matrix (NaN for missing values) and has predict_proba. `export` converts it
# to ONNX: scikit-learn's own estimators and LightGBM, XGBoost and CatBoost convert as they are;
# another library needs its converter registered in pipeline/converters.py (export says so).
# =================================================================================================
def build_model(params: Mapping[str, Any]) -> Pipeline:
    family = params["model"]
    seed = int(params["seed"])
    impute = ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
    if family == "logistic_regression":
        options = params["logistic_regression"]
        model = LogisticRegression(
            C=float(options["C"]), max_iter=int(options["max_iter"]), random_state=seed
        )
        return Pipeline([impute, ("scale", StandardScaler()), ("model", model)])
    # The tree models below get no scaler: trees do not need one, and splitting on the raw
    # float32 inputs keeps the ONNX model's branch decisions identical to the library's (see
    # the export parity check). The imputer gives every family the same missing-value rule.
    if family == "gradient_boosting":
        options = params["gradient_boosting"]
        model = HistGradientBoostingClassifier(
            learning_rate=float(options["learning_rate"]),
            max_iter=int(options["max_iter"]),
            max_leaf_nodes=int(options["max_leaf_nodes"]),
            l2_regularization=float(options["l2_regularization"]),
            early_stopping=False,
            random_state=seed,
        )
        return Pipeline([impute, ("model", model)])
    if family == "lightgbm":
        options = params["lightgbm"]
        model = optional("lightgbm").LGBMClassifier(
            n_estimators=int(options["n_estimators"]),
            learning_rate=float(options["learning_rate"]),
            num_leaves=int(options["num_leaves"]),
            reg_lambda=float(options["reg_lambda"]),
            n_jobs=int(options["n_jobs"]),
            random_state=seed,
            verbose=-1,
        )
        return Pipeline([impute, ("model", model)])
    if family == "xgboost":
        options = params["xgboost"]
        model = optional("xgboost").XGBClassifier(
            n_estimators=int(options["n_estimators"]),
            learning_rate=float(options["learning_rate"]),
            max_depth=int(options["max_depth"]),
            reg_lambda=float(options["reg_lambda"]),
            n_jobs=int(options["n_jobs"]),
            tree_method="hist",
            random_state=seed,
        )
        return Pipeline([impute, ("model", model)])
    if family == "catboost":
        options = params["catboost"]
        model = optional("catboost").CatBoostClassifier(
            iterations=int(options["iterations"]),
            learning_rate=float(options["learning_rate"]),
            depth=int(options["depth"]),
            l2_leaf_reg=float(options["l2_leaf_reg"]),
            thread_count=int(options["n_jobs"]),
            random_seed=seed,
            verbose=False,
            allow_writing_files=False,  # no catboost_info/ folder in the repository
        )
        return Pipeline([impute, ("model", model)])
    raise ValueError(f"train.model {family!r} is not one of {MODEL_FAMILIES}")


# =================================================================================================


def pin_fit_stamps(model: Any) -> None:
    """CatBoost stamps every fit with a random ``model_guid`` and its finish time: fixed values
    keep models/model.pkl (and so dvc.lock) byte-identical when the same data are retrained."""
    for step in steps(model):
        if type(step).__module__.startswith("catboost"):
            metadata = step.get_metadata()
            metadata["model_guid"] = metadata["train_finish_time"] = "pinned"


@dataclass(frozen=True)
class Fit:
    """What either engine hands the rest of the stage: the fitted pipeline and its validation
    scores, the features it was fitted on, the rows of each split."""

    model: Any
    features: list[Feature]
    valid_scores: np.ndarray
    valid_target: np.ndarray
    rows: dict[str, int]


def fit_local(params: Params, contract: Contract) -> Fit:
    """engine: local — both splits in memory, build_model() fitted in this process."""
    train = read_split(params.path("train_split"), contract.label_columns())
    valid = read_split(params.path("valid_split"), contract.label_columns())
    features = contract.features_for(train.columns)
    model = build_model(params.read("train"))
    model.fit(encode(train, features), train[contract.target].to_numpy())
    valid_scores = model.predict_proba(encode(valid, features))[:, 1]
    rows = {"train": len(train), "valid": len(valid)}
    return Fit(model, features, valid_scores, valid[contract.target].to_numpy(), rows)


def fit_dask(params: Params, contract: Contract) -> Fit:
    """engine: dask — the splits stay partitioned on the workers (pipeline/dask_train.py)."""
    options = params.read("train")
    require_dask_family(options["model"])
    with dask_client(params) as client:
        from . import dask_train  # needs the dask group, which the local engine does not

        train = dask_train.read_partitions(params.path("train_split"), contract.label_columns())
        valid = dask_train.read_partitions(params.path("valid_split"), contract.label_columns())
        features = contract.features_for(train.columns)
        model, train_rows = dask_train.fit_pipeline(
            build_model(options), client, train, features, contract.target
        )
        valid_scores, valid_target = dask_train.scores_and_labels(
            client, model, valid, features, contract.target
        )
        rows = {"train": train_rows, "valid": len(valid_target)}
    return Fit(model, features, valid_scores, valid_target, rows)


def run(params: Params) -> dict[str, Any]:
    contract = Contract.from_params(params.read("contract"))
    policy = policy_from_params(params.read("threshold"))
    fit = fit_dask(params, contract) if engine(params) == "dask" else fit_local(params, contract)
    pin_fit_stamps(fit.model)
    # Built once, whole: the threshold is known before the schema exists.
    schema = FeatureSchema(
        features=fit.features,
        threshold=choose_threshold(fit.valid_scores, policy, fit.valid_target),
        threshold_policy=policy,
        target=contract.target,
        group_column=contract.group,
    )
    TrainedModel(fit.model, schema, fit.rows).save(params.path("model_pickle"))
    return {
        "valid_roc_auc": float(roc_auc_score(fit.valid_target, fit.valid_scores)),
        "threshold": schema.threshold,
        "n_inputs": schema.n_inputs,
        "train_rows": fit.rows["train"],
    }


def main(argv: Sequence[str]) -> int:
    args = stage_args(argv, "fit build_model(params) on the training split")
    started = time.perf_counter()
    summary = run(Params.load(args.root))
    print(
        f"train: {summary['train_rows']} rows x {summary['n_inputs']} inputs, "
        f"valid ROC AUC {summary['valid_roc_auc']:.4f}, threshold {summary['threshold']:.4f}, "
        f"{time.perf_counter() - started:.1f}s"
    )
    return 0
