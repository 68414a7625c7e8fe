"""The reference profile saved next to the model: per-feature bins and the score distribution.

Drift is measured on the same encoded matrix the model sees (``features.Encoder``), so the
profile and the live records can never disagree on parsing or categories: numeric-like
features are binned on training quantiles (missing values get a bin of their own), and
categoricals are compared category by category (plus "missing").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..features import Feature, FeatureSchema

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


def _blocks(schema: FeatureSchema, matrix: np.ndarray) -> Iterator[tuple[Feature, np.ndarray]]:
    """Each feature with its columns of the encoded matrix."""
    offset = 0
    for feature in schema.features:
        yield feature, matrix[:, offset : offset + feature.width]
        offset += feature.width


def _edges(quantiles: Iterable[float]) -> list[float]:
    """Inner cut points: the quantiles, each once, in order."""
    return sorted({float(q) for q in quantiles})


def _inner(bins: int) -> np.ndarray:
    return np.linspace(0, 1, bins + 1)[1:-1]


@dataclass
class Sketch:
    """A column's present values summarised as at most ``resolution`` weighted points, for
    quantiles of data too large to hold: sketches of partitions merge into one of the whole,
    and a quantile read from it is off by at most about ``rows / resolution`` ranks (exact
    while the data have fewer values than ``resolution``)."""

    values: np.ndarray  # sorted
    weights: np.ndarray  # how many values each point stands for

    @classmethod
    def of(cls, column: np.ndarray, resolution: int) -> Sketch:
        present = np.sort(column[~np.isnan(column)].astype(float))
        return cls(present, np.ones(present.size)).compressed(resolution)

    def compressed(self, resolution: int) -> Sketch:
        total = self.weights.sum()
        if self.values.size <= resolution:
            return self
        # The points at evenly spaced ranks, each standing for an equal share of the values.
        ranks = (np.arange(resolution) + 0.5) * total / resolution
        picked = np.searchsorted(np.cumsum(self.weights), ranks, side="left")
        return Sketch(self.values[picked], np.full(resolution, total / resolution))

    def merged(self, other: Sketch, resolution: int) -> Sketch:
        values = np.concatenate([self.values, other.values])
        order = np.argsort(values, kind="stable")
        weights = np.concatenate([self.weights, other.weights])
        return Sketch(values[order], weights[order]).compressed(resolution)

    def quantiles(self, levels: np.ndarray) -> np.ndarray:
        """``np.quantile`` of the values the sketch stands for: exact while it kept them all."""
        total = self.weights.sum()
        if not total:
            return np.array([])
        if total == self.values.size:  # every value kept: np.quantile's linear rule exactly
            return np.quantile(self.values, levels)
        # Summarised: the point whose share of ranks holds the quantile's rank. A data value,
        # not one interpolated between two, so a cut point of tied values (whole percentages,
        # counts) falls on the tie as np.quantile's does and bins the tied rows alike.
        picked = np.searchsorted(np.cumsum(self.weights), levels * total, side="left")
        return self.values[np.minimum(picked, self.values.size - 1)]


@dataclass
class PartitionSketch:
    """One partition's sketches: each numeric feature's and the score's."""

    features: dict[str, Sketch]
    score: Sketch

    @classmethod
    def of(
        cls, schema: FeatureSchema, matrix: np.ndarray, scores: np.ndarray, resolution: int
    ) -> PartitionSketch:
        features = {
            feature.name: Sketch.of(block[:, 0], resolution)
            for feature, block in _blocks(schema, matrix)
            if feature.kind != "categorical"
        }
        return cls(features, Sketch.of(scores, resolution))

    def merged(self, other: PartitionSketch, resolution: int) -> PartitionSketch:
        features = {
            name: sketch.merged(other.features[name], resolution)
            for name, sketch in self.features.items()
        }
        return PartitionSketch(features, self.score.merged(other.score, resolution))

    def edges(self, bins: int) -> tuple[dict[str, list[float]], list[float]]:
        """The bins' cut points the merged sketches give: per numeric feature, and the score's."""
        features = {name: _edges(s.quantiles(_inner(bins))) for name, s in self.features.items()}
        return features, _edges(self.score.quantiles(_inner(bins)))


@dataclass
class BinCounts:
    """Rows per bin of each feature and of the score (a partition's, or summed)."""

    features: dict[str, np.ndarray]
    score: np.ndarray
    n_rows: int

    @classmethod
    def of(
        cls,
        schema: FeatureSchema,
        matrix: np.ndarray,
        scores: np.ndarray,
        edges: Mapping[str, list[float]],
        score_edges: list[float],
    ) -> BinCounts:
        features = {
            feature.name: (
                _categorical_bins(block)
                if feature.kind == "categorical"
                else _numeric_bins(block[:, 0].astype(float), edges[feature.name])
            )
            for feature, block in _blocks(schema, matrix)
        }
        score = _numeric_bins(scores.astype(float), score_edges)
        return cls(features, score, int(matrix.shape[0]))

    def __add__(self, other: BinCounts) -> BinCounts:
        features = {name: counts + other.features[name] for name, counts in self.features.items()}
        return BinCounts(features, self.score + other.score, self.n_rows + other.n_rows)


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
        """The profile of data held in memory: exact training quantiles."""
        edges = {}
        for feature, block in _blocks(schema, matrix):
            if feature.kind != "categorical":
                column = block[:, 0].astype(float)
                present = column[~np.isnan(column)]
                edges[feature.name] = _edges(
                    np.quantile(present, _inner(bins)) if present.size else []
                )
        score_edges = _edges(np.quantile(scores, _inner(bins)))
        counts = BinCounts.of(schema, matrix, scores, edges, score_edges)
        return cls.from_counts(schema, counts, edges, score_edges, drift)

    @classmethod
    def from_counts(
        cls,
        schema: FeatureSchema,
        counts: BinCounts,
        edges: Mapping[str, list[float]],
        score_edges: list[float],
        drift: dict[str, float],
    ) -> ReferenceProfile:
        """The profile from bin counts (summed over partitions, or of one matrix)."""
        features: dict[str, Histogram] = {}
        for feature in schema.features:
            proportions = _proportions(counts.features[feature.name])
            if feature.kind == "categorical":
                labels = [*feature.categories, MISSING]
                features[feature.name] = Histogram([], labels, proportions)
            else:
                features[feature.name] = Histogram(edges[feature.name], [], proportions)
        score = Histogram(score_edges, [], _proportions(counts.score))
        version = str(schema.model.get("version", ""))
        return cls(version, counts.n_rows, features, score, dict(drift))

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
    for feature, block in _blocks(schema, matrix):
        reference = profile.features[feature.name]
        if feature.kind == "categorical":
            out[feature.name] = _proportions(_categorical_bins(block))
        else:
            out[feature.name] = _proportions(
                _numeric_bins(block[:, 0].astype(float), reference.edges)
            )
    score = _proportions(_numeric_bins(scores.astype(float), profile.score.edges))
    return out, score
