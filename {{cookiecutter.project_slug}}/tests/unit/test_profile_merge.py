"""The reference profile from per-partition sketches and counts (``engine: dask``'s export)
against the one ``ReferenceProfile.build`` computes from the whole matrix."""

from __future__ import annotations

from functools import reduce

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.features import Encoder
from {{ cookiecutter.package_name }}.monitoring.profile import (
    BinCounts,
    PartitionSketch,
    ReferenceProfile,
    Sketch,
)

from drift_support import DRIFT_SETTINGS, SCHEMA, records, scores_for

BINS = 10
POINTS = 200  # small, so that 6,000 rows in 4 partitions are summarised, not kept


def merged_profile(matrix: np.ndarray, scores: np.ndarray, partitions: int) -> ReferenceProfile:
    """What dask_profile does on the workers, here on slices of one matrix."""
    slices = np.array_split(np.arange(len(matrix)), partitions)
    sketches = [PartitionSketch.of(SCHEMA, matrix[rows], scores[rows], POINTS) for rows in slices]
    edges, score_edges = reduce(lambda a, b: a.merged(b, POINTS), sketches).edges(BINS)
    counts = [BinCounts.of(SCHEMA, matrix[r], scores[r], edges, score_edges) for r in slices]
    total = reduce(BinCounts.__add__, counts)
    return ReferenceProfile.from_counts(SCHEMA, total, edges, score_edges, DRIFT_SETTINGS)


@pytest.fixture(scope="module")
def encoded() -> tuple[np.ndarray, np.ndarray]:
    matrix = Encoder(SCHEMA).encode_records(records(np.random.default_rng(5), 6000))
    return matrix, scores_for(matrix)


def test_merged_partitions_give_the_local_profile_within_the_sketch_error(encoded) -> None:
    matrix, scores = encoded
    local = ReferenceProfile.build(SCHEMA, matrix, scores, DRIFT_SETTINGS, bins=BINS)
    merged = merged_profile(matrix, scores, partitions=4)
    assert merged.n_rows == local.n_rows == 6000
    # A cut point is off by at most rows / POINTS = 30 ranks: each bin's share by 2 x 30/6000.
    tolerance = 2 * len(matrix) / POINTS / len(matrix)
    for name, histogram in local.features.items():
        assert merged.features[name].labels == histogram.labels
        assert len(merged.features[name].edges) == len(histogram.edges), name
        np.testing.assert_allclose(
            merged.features[name].proportions, histogram.proportions, atol=tolerance
        )
    np.testing.assert_allclose(merged.score.proportions, local.score.proportions, atol=tolerance)
    # Categorical counts are added up, not sketched: exact.
    assert merged.features["x5"].proportions == pytest.approx(local.features["x5"].proportions)


def test_one_partition_below_the_sketch_size_is_the_local_profile_exactly(encoded) -> None:
    matrix, scores = encoded[0][:150], encoded[1][:150]
    local = ReferenceProfile.build(SCHEMA, matrix, scores, DRIFT_SETTINGS, bins=BINS)
    assert merged_profile(matrix, scores, partitions=1) == local


def test_a_sketch_of_tied_values_cuts_on_the_ties() -> None:
    """Whole numbers (percentages, counts): a summarised cut point is a data value, so the tied
    rows fall in the same bin as with the exact quantile."""
    values = np.random.default_rng(0).integers(0, 100, 20_000).astype(float)
    levels = np.linspace(0, 1, BINS + 1)[1:-1]
    parts = [Sketch.of(part, POINTS) for part in np.array_split(values, 5)]
    merged = reduce(lambda a, b: a.merged(b, POINTS), parts)
    assert set(merged.quantiles(levels)) <= set(values)
    assert np.abs(merged.quantiles(levels) - np.quantile(values, levels)).max() <= 1


def test_missing_values_are_not_sketched() -> None:
    sketch = Sketch.of(np.array([np.nan, 1.0, np.nan, 3.0]), POINTS)
    assert sketch.values.tolist() == [1.0, 3.0] and sketch.weights.sum() == 2
    assert Sketch.of(np.array([np.nan]), POINTS).quantiles(np.array([0.5])).size == 0
