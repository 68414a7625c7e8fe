"""The threshold policy: how a score becomes a decision (``score >= threshold`` → flagged).

``max_f_beta`` (default) picks, on the validation split at training time, the threshold with the
highest F-beta score (``beta`` > 1 weighs recall more, < 1 precision); ties go to the highest
threshold, i.e. the fewest flags. It assumes nothing about the positive rate, so it adapts when
a team's data replace the synthetic ones. ``top_fraction`` flags the highest-scoring share of
transactions, e.g. the top 25 %, as a review team with fixed capacity would. ``fixed`` uses
``value`` as is. The chosen threshold and the policy travel with the model
(``models/features.json``), so the service decides exactly as the evaluation did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..config import UserError

POLICIES = ("max_f_beta", "top_fraction", "fixed")


class ThresholdError(UserError, ValueError):
    """The ``threshold`` block of params.yaml cannot be applied."""


def policy_from_params(block: Mapping[str, Any]) -> dict[str, Any]:
    """The policy as it is recorded with the model (only the keys the policy uses)."""
    policy = block.get("policy")
    if policy == "max_f_beta":
        beta = float(block.get("beta", 1.0))
        if not beta > 0:
            raise ThresholdError(f"threshold.beta must be above 0, got {beta}")
        return {"policy": policy, "beta": beta}
    if policy == "top_fraction":
        fraction = float(block["top_fraction"])
        if not 0 < fraction < 1:
            raise ThresholdError(f"threshold.top_fraction must be in (0, 1), got {fraction}")
        return {"policy": policy, "top_fraction": fraction}
    if policy == "fixed":
        value = float(block["value"])
        if not 0 <= value <= 1:
            raise ThresholdError(f"threshold.value must be in [0, 1], got {value}")
        return {"policy": policy, "value": value}
    raise ThresholdError(f"threshold.policy {policy!r} is not one of {POLICIES}")


def _max_f_beta(scores: np.ndarray, labels: np.ndarray, beta: float) -> float:
    """The candidate threshold (a validation score) with the highest F-beta; ties → highest."""
    positives = int(labels.sum())
    if positives == 0:
        raise ThresholdError(
            "threshold.policy max_f_beta needs positive labels in the validation split; "
            "it has none: use more data or the top_fraction policy"
        )
    order = np.argsort(-scores, kind="stable")
    ordered, hits = scores[order], labels[order]
    true_pos = np.cumsum(hits)
    flagged = np.arange(1, scores.size + 1)
    # Flagging `score >= t` flags every row tied with t: only the last row of each tie counts.
    last = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])
    tp, n = true_pos[last].astype("float64"), flagged[last].astype("float64")
    b2 = beta * beta
    f_beta = (1 + b2) * tp / (b2 * positives + n)  # = (1+b²)PR / (b²P + R)
    best = int(np.flatnonzero(f_beta == f_beta.max())[0])  # the first: highest threshold
    return float(ordered[last[best]])


def choose_threshold(
    scores: np.ndarray, policy: Mapping[str, Any], labels: np.ndarray | None = None
) -> float:
    """The threshold the policy picks for these (validation) scores and their 0/1 labels."""
    if policy["policy"] == "fixed":
        return float(policy["value"])
    scores = np.asarray(scores, dtype="float64")
    if scores.size == 0:
        raise ThresholdError(f"cannot choose a {policy['policy']} threshold from no scores")
    if policy["policy"] == "max_f_beta":
        if labels is None or len(labels) != scores.size:
            raise ValueError("max_f_beta needs one label per score")
        return _max_f_beta(scores, np.asarray(labels, dtype="int64"), float(policy["beta"]))
    ordered = np.sort(scores)[::-1]
    k = max(1, round(policy["top_fraction"] * scores.size))
    # The k-th highest score: exactly k rows are flagged unless scores tie at the cut-off.
    return float(ordered[k - 1])


def describe(policy: Mapping[str, Any]) -> str:
    """The policy in words, for the model card."""
    if policy.get("policy") == "max_f_beta":
        return (
            f"the highest F{policy['beta']:g} score on the validation split "
            f"(beta {policy['beta']:g}; ties go to the higher threshold)"
        )
    if policy.get("policy") == "top_fraction":
        return (
            f"flag the top {policy['top_fraction']:.0%} of scores "
            "(cut-off from the validation split)"
        )
    return f"fixed threshold {policy.get('value')}"


def decide(scores: np.ndarray, threshold: float) -> np.ndarray:
    """1 where the score reaches the threshold (the rule the service applies too)."""
    return (np.asarray(scores) >= threshold).astype("int64")
