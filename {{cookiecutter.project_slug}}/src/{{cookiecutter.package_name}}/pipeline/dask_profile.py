"""``export``'s reference profile with ``engine: dask``: the training split stays on the workers.

Two passes over the partitions, each encoding and scoring a partition where it is read:

1. every partition sketches each numeric feature and the score (``monitoring.profile.Sketch``,
   at most ``SKETCH_POINTS`` weighted points each); the sketches are merged pairwise on the
   workers into one, whose quantiles are the bins' cut points;
2. every partition counts its rows per bin of those cut points; the counts are added up.

Only sketches and counts reach the stage process. The proportions are exact for the cut
points; the cut points are the training quantiles within about ``rows / SKETCH_POINTS`` ranks
(exact below that many rows), where the local engine computes them exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np

from ..features import FeatureSchema
from ..monitoring.profile import BinCounts, PartitionSketch, ReferenceProfile
from .matrix import encode

# Points per sketch: 100 numeric features x 4,000 points x 16 bytes = 6.4 MB per partition's
# sketches, and cut points within 0.025% of the rows of the true quantile.
SKETCH_POINTS = 4000


def _encoded(part: Any, model: Any, schema: FeatureSchema) -> tuple[np.ndarray, np.ndarray]:
    matrix = encode(part, schema)
    return matrix, model.predict_proba(matrix)[:, 1]


def _sketch(part: Any, model: Any, schema: FeatureSchema) -> PartitionSketch:
    return PartitionSketch.of(schema, *_encoded(part, model, schema), SKETCH_POINTS)


def _merge(left: PartitionSketch, right: PartitionSketch) -> PartitionSketch:
    return left.merged(right, SKETCH_POINTS)


def _count(
    part: Any,
    model: Any,
    schema: FeatureSchema,
    edges: Mapping[str, list[float]],
    score_edges: list[float],
) -> BinCounts:
    return BinCounts.of(schema, *_encoded(part, model, schema), edges, score_edges)


def _tree(items: Sequence[Any], combine: Any) -> Any:
    """``items`` combined pairwise, level by level (a balanced tree of delayed tasks), so no
    task holds more than two of them."""
    level = list(items)
    while len(level) > 1:
        pairs = [dask.delayed(combine)(a, b) for a, b in zip(level[::2], level[1::2], strict=False)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def reference_profile(
    client: Any,
    model: Any,
    schema: FeatureSchema,
    train: dd.DataFrame,
    drift: Mapping[str, Any],
) -> ReferenceProfile:
    """The reference profile of the partitioned training split (see the module docstring)."""
    bins = int(drift["bins"])
    settings = {key: float(drift[key]) for key in ("psi_threshold", "min_records")}
    shipped = client.scatter(model, broadcast=True)
    parts = train.to_delayed()
    sketches = [dask.delayed(_sketch)(part, shipped, schema) for part in parts]
    edges, score_edges = client.compute(_tree(sketches, _merge)).result().edges(bins)
    counts = [dask.delayed(_count)(part, shipped, schema, edges, score_edges) for part in parts]
    total = client.compute(_tree(counts, BinCounts.__add__)).result()
    return ReferenceProfile.from_counts(schema, total, edges, score_edges, settings)
