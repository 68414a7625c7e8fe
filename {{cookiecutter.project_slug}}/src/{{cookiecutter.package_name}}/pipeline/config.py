"""Paths, parameters and small helpers shared by the pipeline stages.

Every path is relative to the project root (the working directory DVC runs stages in); the same
paths are declared as deps/outs in ``dvc.yaml``, and the functional tests check the two agree.
"""

from __future__ import annotations

import argparse
import json
import pickle  # nosec B403 - loads only this pipeline's own model file (see load_bundle)
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..features import Encoder, FeatureSchema

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class Paths:
    """Where each stage reads and writes, under ``root``."""

    root: Path = Path()

    def _at(self, rel: str) -> Path:
        return self.root / rel

    @property
    def params(self) -> Path:
        return self._at(PARAMS_FILE)

    @property
    def prepared(self) -> Path:
        return self._at("data/prepared")

    def split(self, name: str) -> Path:
        return self.prepared / f"{name}.csv"

    @property
    def model_pickle(self) -> Path:
        return self._at("models/model.pkl")

    @property
    def model_onnx(self) -> Path:
        return self._at("models/model.onnx")

    @property
    def feature_schema(self) -> Path:
        return self._at("models/features.json")

    @property
    def reference_profile(self) -> Path:
        return self._at("models/reference_profile.json")

    @property
    def reports(self) -> Path:
        return self._at("reports")

    @property
    def metrics(self) -> Path:
        return self._at("reports/metrics.json")

    @property
    def fairness(self) -> Path:
        return self._at("reports/fairness.json")

    @property
    def parity(self) -> Path:
        return self._at("reports/parity.json")

    @property
    def model_card(self) -> Path:
        return self._at("reports/MODEL_CARD.md")

    @property
    def plots(self) -> Path:
        return self._at("reports/plots")

    @property
    def figures(self) -> Path:
        return self._at("reports/figures")

    def data_file(self, params: dict[str, Any]) -> Path:
        return self._at(params["data"]["path"])


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    with open(path) as handle:
        params = yaml.safe_load(handle)
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of parameter sections")
    return params


def stage_args(argv: Sequence[str], description: str) -> argparse.Namespace:
    """The options every stage accepts: where the project root is (default: here)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", type=Path, default=Path(), help="project root (default: .)")
    return parser.parse_args(list(argv))


def save_bundle(bundle: dict[str, Any], path: Path) -> None:
    """Pickle the trained bundle; protocol pinned so the bytes are reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(bundle, protocol=5))


def load_bundle(path: Path) -> dict[str, Any]:
    """Load the bundle ``train`` wrote: the fitted sklearn pipeline and its ``FeatureSchema``.

    Only ever load a model file this project's own pipeline produced: unpickling runs code.
    """
    return pickle.loads(path.read_bytes())  # noqa: S301  # nosec B301 - our own DVC-tracked artefact


def encode(frame: Any, schema: FeatureSchema) -> np.ndarray:
    """The model's float32 input matrix for a prepared frame, through the serving encoder.

    Float columns go in as arrays (the encoder's vectorised path), the rest as Python lists.
    """
    columns: dict[str, Any] = {}
    for feature in schema.features:
        values = frame[feature.name]
        if feature.kind != "categorical" and values.dtype.kind == "f":
            columns[feature.name] = values.to_numpy(dtype="float64")
        else:
            columns[feature.name] = values.tolist()
    return Encoder(schema).encode_columns(columns, len(frame))


def write_json(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
