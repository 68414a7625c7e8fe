"""The bodies the service answers with, as msgspec Structs: encoded by the routes and turned into
the OpenAPI document (``openapi.py``) by the same types, so the document is what the server says.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import numpy as np

_encode = msgspec.json.Encoder().encode


class Prediction(msgspec.Struct, gc=False):
    """The answer to one record."""

    p_hat: float
    business_outcome: Literal[0, 1]
    model_version: str


class RowPrediction(msgspec.Struct, gc=False):
    """One row of a batch answer (a Struct encodes ~2x faster than a dict)."""

    p_hat: float
    business_outcome: Literal[0, 1]


class BatchPrediction(msgspec.Struct, gc=False):
    """The answer to both batch forms: one prediction per row, in the rows' order."""

    model_version: str
    predictions: list[RowPrediction]


def batch_response(version: str, threshold: float, p: np.ndarray) -> bytes:
    """A columnar answer ({"p_hat": [...], "business_outcome": [...]}) would save ~2 ms of ~100
    on 10,000 rows (``bench --decoders``): not worth a second response shape."""
    outcome = (p >= threshold).astype(np.int8).tolist()
    rows = [RowPrediction(a, b) for a, b in zip(p.tolist(), outcome, strict=True)]
    return _encode(BatchPrediction(version, rows))


class Live(msgspec.Struct):
    status: Literal["ok"] = "ok"


class Ready(msgspec.Struct):
    model_version: str
    status: Literal["ready"] = "ready"


class FeatureInfo(msgspec.Struct, omit_defaults=True):
    name: str
    kind: Literal["numeric", "money", "percent", "categorical"]
    nullable: bool
    categories: list[str] | None = None
    description: str | None = None


class ModelInfo(msgspec.Struct):
    """``GET /v1/model``: the served model, its decision threshold and its inputs."""

    version: str
    sha256: str
    # What build_model() returned, by its steps' class names ("SimpleImputer → LGBMClassifier");
    # null for a model folder exported before features.json recorded it.
    estimator: str | None
    threshold: float
    metrics: dict[str, Any]
    n_inputs: int
    features: list[FeatureInfo]
