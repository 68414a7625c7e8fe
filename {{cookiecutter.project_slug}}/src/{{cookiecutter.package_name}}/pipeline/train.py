"""DVC stage ``train``: fit ``build_model(params)`` on the training split.

The model sees exactly what the service will feed it: the float32 matrix that
``features.Encoder`` makes from the feature schema (categoricals one-hot, missing values NaN).
The decision threshold is chosen on the validation split (see ``threshold.py``) and saved with
the fitted pipeline in ``models/model.pkl``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ..data.contract import Contract
from ..features import FeatureSchema
from .config import Paths, encode, load_params, save_bundle, stage_args
from .prepare import read_split
from .threshold import choose_threshold, policy_from_params

MODEL_FAMILIES = ("logistic_regression", "gradient_boosting")


# =================================================================================================
# build_model: THE place to change the model. It receives the `train` block of params.yaml and
# returns an unfitted scikit-learn estimator that takes the encoder's float32 matrix (NaN for
# missing values) and has predict_proba. Keep it convertible by skl2onnx: `export` fails the
# pipeline, with skl2onnx's message, if it is not.
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
        # No scaler: trees do not need one, and splitting on the raw float32 inputs keeps the
        # ONNX model's branch decisions identical to scikit-learn's (see the export parity check).
        return Pipeline([impute, ("model", model)])
    raise ValueError(f"train.model {family!r} is not one of {MODEL_FAMILIES}")


# =================================================================================================


def base_schema(
    contract: Contract, columns: Sequence[str], threshold: float, policy: dict
) -> FeatureSchema:
    return FeatureSchema(
        features=contract.features_for(columns),
        threshold=threshold,
        threshold_policy=policy,
        target=contract.target,
        group_column=contract.group,
    )


def run(params: Mapping[str, Any], root: Path = Path()) -> dict[str, Any]:
    paths = Paths(root)
    contract = Contract.from_params(params["contract"])
    train = read_split(paths, "train", contract)
    valid = read_split(paths, "valid", contract)
    policy = policy_from_params(params["threshold"])
    schema = base_schema(contract, list(train.columns), threshold=0.5, policy=policy)

    model = build_model(params["train"])
    model.fit(encode(train, schema), train[contract.target].to_numpy())
    valid_scores = model.predict_proba(encode(valid, schema))[:, 1]
    schema.threshold = choose_threshold(valid_scores, policy)
    save_bundle(
        {
            "pipeline": model,
            "schema": schema,
            "family": params["train"]["model"],
            "rows": {"train": len(train), "valid": len(valid)},
        },
        paths.model_pickle,
    )
    return {
        "valid_roc_auc": float(roc_auc_score(valid[contract.target], valid_scores)),
        "threshold": schema.threshold,
        "n_inputs": schema.n_inputs,
        "train_rows": len(train),
    }


def main(argv: Sequence[str]) -> int:
    args = stage_args(argv, "fit build_model(params) on the training split")
    started = time.perf_counter()
    summary = run(load_params(Paths(args.root).params), args.root)
    print(
        f"train: {summary['train_rows']} rows x {summary['n_inputs']} inputs, "
        f"valid ROC AUC {summary['valid_roc_auc']:.4f}, threshold {summary['threshold']:.4f}, "
        f"{time.perf_counter() - started:.1f}s"
    )
    return 0
