"""The training side of the encoder: a prepared frame → the model's float32 input matrix.

Every stage that scores data (``train``, ``evaluate``, ``export``) builds its matrix here, through
the service's own encoder (``features.Encoder``): the model is trained and checked on exactly
what the service will feed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..features import Encoder, Feature, FeatureSchema


def encode(frame: Any, schema: FeatureSchema | Sequence[Feature]) -> np.ndarray:
    """The model's float32 input matrix for a prepared frame (``schema`` or its features).

    Float columns go in as arrays (the encoder's vectorised path), the rest as Python lists.
    """
    encoder = Encoder(schema)
    columns: dict[str, Any] = {}
    for feature in encoder.features:
        values = frame[feature.name]
        if feature.kind != "categorical" and values.dtype.kind == "f":
            columns[feature.name] = values.to_numpy(dtype="float64")
        else:
            columns[feature.name] = values.tolist()
    return encoder.encode_columns(columns, len(frame))


def text_columns(schema: FeatureSchema) -> list[str]:
    """The columns of a prepared split that hold labels, read back as text: the categorical
    features and the group column."""
    labels = [feature.name for feature in schema.features if feature.kind == "categorical"]
    return [*labels, schema.group_column] if schema.group_column else labels
