"""The reference profile saved next to the model: per-feature bins and the score distribution.

Drift is measured on the same encoded matrix the model sees (``features.Encoder``), so the
profile and the live records can never disagree on parsing or categories: numeric-like
features are binned on training quantiles (missing values get a bin of their own), and
categoricals are compared category by category (plus "missing").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..features import FeatureSchema

MISSING = "<missing>"


@dataclass
class Histogram:
    """Proportions per bin. ``edges`` for numeric bins (inner cut points), else ``labels``."""

    edges: list[float]
    labels: list[str]
    proportions: list[float]


def _numeric_bins(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts per bin: ``len(edges) + 1`` value bins, then one bin for missing values."""
    missing = np.isnan(values)
    counts = np.bincount(
        np.searchsorted(edges, values[~missing], side="right"), minlength=len(edges) + 1
    )
    return np.append(counts, missing.sum()).astype(float)


def _categorical_bins(onehot: np.ndarray) -> np.ndarray:
    """Counts per category, then one bin for rows with no category (missing)."""
    counts = onehot.sum(axis=0)
    return np.append(counts, (onehot.sum(axis=1) == 0).sum()).astype(float)


def _proportions(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


@dataclass
class ReferenceProfile:
    model_version: str
    n_rows: int
    features: dict[str, Histogram]
    score: Histogram
    # The drift job's settings, copied from params.yaml `drift:` at export so the job needs only
    # the models folder: psi_threshold, min_records.
    drift: dict[str, float]

    @classmethod
    def build(
        cls,
        schema: FeatureSchema,
        matrix: np.ndarray,
        scores: np.ndarray,
        drift: dict[str, float],
        bins: int = 10,
    ) -> ReferenceProfile:
        features: dict[str, Histogram] = {}
        offset = 0
        for feature in schema.features:
            block = matrix[:, offset : offset + feature.width]
            offset += feature.width
            if feature.kind == "categorical":
                labels = [*feature.categories, MISSING]
                features[feature.name] = Histogram(
                    [], labels, _proportions(_categorical_bins(block))
                )
            else:
                column = block[:, 0].astype(float)
                present = column[~np.isnan(column)]
                quantiles = (
                    np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]) if present.size else []
                )
                edges = sorted({float(q) for q in quantiles})
                features[feature.name] = Histogram(
                    edges, [], _proportions(_numeric_bins(column, edges))
                )
        score_edges = [
            float(q) for q in np.unique(np.quantile(scores, np.linspace(0, 1, bins + 1)[1:-1]))
        ]
        score = Histogram(
            score_edges, [], _proportions(_numeric_bins(scores.astype(float), score_edges))
        )
        version = str(schema.model.get("version", ""))
        return cls(version, int(matrix.shape[0]), features, score, dict(drift))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        data = json.loads(Path(path).read_text())
        return cls(
            model_version=data["model_version"],
            n_rows=data["n_rows"],
            features={name: Histogram(**hist) for name, hist in data["features"].items()},
            score=Histogram(**data["score"]),
            drift=data["drift"],
        )


def live_histograms(
    profile: ReferenceProfile, schema: FeatureSchema, matrix: np.ndarray, scores: np.ndarray
) -> tuple[dict[str, list[float]], list[float]]:
    """Bin live data exactly like the reference: (per-feature proportions, score proportions)."""
    out: dict[str, list[float]] = {}
    offset = 0
    for feature in schema.features:
        block = matrix[:, offset : offset + feature.width]
        offset += feature.width
        reference = profile.features[feature.name]
        if feature.kind == "categorical":
            out[feature.name] = _proportions(_categorical_bins(block))
        else:
            out[feature.name] = _proportions(
                _numeric_bins(block[:, 0].astype(float), reference.edges)
            )
    score = _proportions(_numeric_bins(scores.astype(float), profile.score.edges))
    return out, score
