"""The threshold policy: the top-fraction cut-off, the fixed value, and bad settings."""

from __future__ import annotations

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.pipeline.threshold import choose_threshold, decide, policy_from_params


def test_top_fraction_flags_that_share_of_scores() -> None:
    scores = np.random.default_rng(0).uniform(size=10_000)
    policy = policy_from_params({"policy": "top_fraction", "top_fraction": 0.25, "value": 0.5})
    assert policy == {"policy": "top_fraction", "top_fraction": 0.25}
    threshold = choose_threshold(scores, policy)
    assert decide(scores, threshold).sum() == 2500
    assert decide(scores, threshold).dtype == np.int64


def test_top_fraction_on_few_scores_flags_at_least_one() -> None:
    policy = {"policy": "top_fraction", "top_fraction": 0.01}
    assert choose_threshold(np.array([0.1, 0.9, 0.3]), policy) == 0.9


def test_ties_at_the_cut_off_are_all_flagged() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    threshold = choose_threshold(scores, {"policy": "top_fraction", "top_fraction": 0.4})
    assert threshold == 0.5
    assert decide(scores, threshold).tolist() == [1, 1, 1, 1, 0]


def test_fixed_policy_ignores_scores() -> None:
    policy = policy_from_params({"policy": "fixed", "value": 0.3, "top_fraction": 0.25})
    assert policy == {"policy": "fixed", "value": 0.3}
    assert choose_threshold(np.array([0.99, 0.98]), policy) == 0.3


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"policy": "top_fraction", "top_fraction": 1.5}, "top_fraction"),
        ({"policy": "top_fraction", "top_fraction": 0}, "top_fraction"),
        ({"policy": "fixed", "value": -0.1}, "threshold.value"),
        ({"policy": "median"}, "not one of"),
    ],
)
def test_bad_policies_are_refused(block, message) -> None:
    with pytest.raises(ValueError, match=message):
        policy_from_params(block)


def test_no_scores_is_an_error() -> None:
    with pytest.raises(ValueError, match="no scores"):
        choose_threshold(np.array([]), {"policy": "top_fraction", "top_fraction": 0.25})
