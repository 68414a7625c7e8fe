"""The threshold policy: max F-beta on validation, the top-fraction cut-off, the fixed value,
and bad settings."""

from __future__ import annotations

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.pipeline.threshold import choose_threshold, decide, policy_from_params


def test_max_f_beta_picks_the_best_cut_off_whatever_the_positive_rate() -> None:
    rng = np.random.default_rng(1)
    for rate in (0.05, 0.4):
        labels = (rng.uniform(size=4000) < rate).astype(int)
        scores = np.clip(0.3 * labels + rng.uniform(0, 0.7, size=4000), 0, 1)
        policy = policy_from_params({"policy": "max_f_beta", "beta": 1.0, "top_fraction": 0.25})
        assert policy == {"policy": "max_f_beta", "beta": 1.0}
        threshold = choose_threshold(scores, policy, labels)
        flagged = decide(scores, threshold)
        tp = int((flagged & labels).sum())
        f1 = 2 * tp / (flagged.sum() + labels.sum())
        # No other candidate threshold does better (brute force over every score).
        for t in np.unique(scores)[::50]:
            other = decide(scores, t)
            assert 2 * int((other & labels).sum()) / (other.sum() + labels.sum()) <= f1 + 1e-12


def test_max_f_beta_breaks_ties_towards_fewer_flags_and_beta_weighs_recall() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    labels = np.array([1, 0, 1, 0])
    # F1 at 0.9 is 2/3, at 0.7 it is 4/5: 0.7; an equal F at two cut-offs keeps the higher.
    assert choose_threshold(scores, {"policy": "max_f_beta", "beta": 1.0}, labels) == 0.7
    tied = np.array([1, 0, 0, 1])  # F1 at 0.9: 2/3, at 0.6: 2/3
    assert choose_threshold(scores, {"policy": "max_f_beta", "beta": 1.0}, tied) == 0.9
    assert choose_threshold(scores, {"policy": "max_f_beta", "beta": 3.0}, tied) == 0.6


def test_max_f_beta_without_positives_says_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"has none.*top_fraction"):
        choose_threshold(np.array([0.2, 0.4]), {"policy": "max_f_beta", "beta": 1.0}, [0, 0])


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
        ({"policy": "max_f_beta", "beta": 0}, "threshold.beta"),
    ],
)
def test_bad_policies_are_refused(block, message) -> None:
    with pytest.raises(ValueError, match=message):
        policy_from_params(block)


def test_no_scores_is_an_error() -> None:
    with pytest.raises(ValueError, match="no scores"):
        choose_threshold(np.array([]), {"policy": "top_fraction", "top_fraction": 0.25})
