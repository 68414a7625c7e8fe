"""Promotion gate: fail when the candidate model is worse than the base revision's.

Compares the primary metric of the working tree (the model this pipeline trained) with the one
committed on the base revision (the merge request's target branch) via ``dvc metrics diff``.
The rule lives in ``params.yaml``::

    gate:
      metrics_file: reports/metrics.json
      primary_metric: roc_auc      # key in metrics_file (dots for nested keys)
      higher_is_better: true
      tolerance: 0.005             # allowed loss before the gate fails

No metric on the base revision (the first model) passes, and says so.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .dvc_diff import metrics_diff


@dataclass(frozen=True)
class Rule:
    metrics_file: str
    metric: str
    higher_is_better: bool
    tolerance: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Rule:
        gate = params.get("gate")
        if not isinstance(gate, Mapping):
            raise ValueError("params.yaml has no `gate:` section (primary_metric, tolerance, ...)")
        tolerance = float(gate["tolerance"])
        if not math.isfinite(tolerance) or tolerance < 0:
            raise ValueError(
                f"gate.tolerance must be a finite number >= 0, not {gate['tolerance']!r}"
            )
        return cls(
            metrics_file=str(gate.get("metrics_file", "reports/metrics.json")),
            metric=str(gate["primary_metric"]),
            higher_is_better=bool(gate.get("higher_is_better", True)),
            tolerance=tolerance,
        )


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str


def judge(rule: Rule, old: float | None, new: float | None) -> Verdict:
    name = f"`{rule.metric}`"
    if new is None:
        return Verdict(False, f"{name} is missing from the candidate's {rule.metrics_file}")
    if old is None:
        return Verdict(True, f"{name} = {new:.6g}; no baseline on the base revision (first model)")
    delta = new - old if rule.higher_is_better else old - new  # > 0 means better
    direction = "higher" if rule.higher_is_better else "lower"
    text = (
        f"{name}: candidate {new:.6g} vs base {old:.6g} ({'+' if delta >= 0 else ''}{delta:.6g} "
        f"in the better direction, {direction} is better; tolerance {rule.tolerance:g})"
    )
    if delta < -rule.tolerance - 1e-12:  # a loss of exactly `tolerance` passes (float noise)
        return Verdict(False, f"worse beyond tolerance: {text}")
    return Verdict(True, text)


def evaluate(rev: str, params_file: Path = Path("params.yaml"), cwd: Path = Path()) -> Verdict:
    rule = Rule.from_params(yaml.safe_load((cwd / params_file).read_text()))
    diff = metrics_diff(rev, cwd).get(rule.metrics_file, {})
    entry = diff.get(rule.metric, {})
    old, new = entry.get("old"), entry.get("new")
    return judge(rule, None if old is None else float(old), None if new is None else float(new))


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description="fail if the candidate is worse than the base")
    parser.add_argument("--rev", required=True, help="base revision, e.g. origin/main")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(list(argv))
    try:
        verdict = evaluate(args.rev, args.params)
    except (RuntimeError, ValueError, KeyError) as exc:
        print(f"promotion-gate: {exc}", file=sys.stderr)
        return 1
    outcome = "PASSED" if verdict.passed else "FAILED"
    print(f"promotion gate {outcome} against {args.rev}: {verdict.message}")
    return 0 if verdict.passed else 1
