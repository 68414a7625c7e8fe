"""The threshold policy: how a score becomes a decision (``score >= threshold`` → flagged).

``top_fraction`` (default) flags the highest-scoring share of transactions, e.g. the top 25 %, as
a review team with fixed capacity would; the cut-off is taken on the validation split at training
time. ``fixed`` uses ``value`` as is. The chosen threshold and the policy travel with the model
(``models/features.json``), so the service decides exactly as the evaluation did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

POLICIES = ("top_fraction", "fixed")


def policy_from_params(block: Mapping[str, Any]) -> dict[str, Any]:
    """The policy as it is recorded with the model (only the keys the policy uses)."""
    policy = block.get("policy")
    if policy == "top_fraction":
        fraction = float(block["top_fraction"])
        if not 0 < fraction < 1:
            raise ValueError(f"threshold.top_fraction must be in (0, 1), got {fraction}")
        return {"policy": policy, "top_fraction": fraction}
    if policy == "fixed":
        value = float(block["value"])
        if not 0 <= value <= 1:
            raise ValueError(f"threshold.value must be in [0, 1], got {value}")
        return {"policy": policy, "value": value}
    raise ValueError(f"threshold.policy {policy!r} is not one of {POLICIES}")


def choose_threshold(scores: np.ndarray, policy: Mapping[str, Any]) -> float:
    """The threshold the policy picks for these (validation) scores."""
    if policy["policy"] == "fixed":
        return float(policy["value"])
    scores = np.asarray(scores, dtype="float64")
    if scores.size == 0:
        raise ValueError("cannot choose a top_fraction threshold from no scores")
    ordered = np.sort(scores)[::-1]
    k = max(1, round(policy["top_fraction"] * scores.size))
    # The k-th highest score: exactly k rows are flagged unless scores tie at the cut-off.
    return float(ordered[k - 1])


def decide(scores: np.ndarray, threshold: float) -> np.ndarray:
    """1 where the score reaches the threshold (the rule the service applies too)."""
    return (np.asarray(scores) >= threshold).astype("int64")
