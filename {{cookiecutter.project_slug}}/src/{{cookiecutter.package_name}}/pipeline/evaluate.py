"""DVC stage ``evaluate``: metrics, plots, the fairness check and the model card, on the test split.

Writes ``reports/metrics.json`` (DVC metrics), ``reports/plots/*.csv`` (DVC plots: ROC, PR,
calibration, confusion), ``reports/figures/*.png`` (the same plots as images, for the model card
and merge-request reports), ``reports/fairness.json`` and ``reports/MODEL_CARD.md``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from ..config import Params, read_split, stage_args, write_json
from .matrix import encode, text_columns
from .model_card import write_model_card
from .threshold import decide
from .trained import TrainedModel


def _round(value: float) -> float:
    return round(float(value), 6)


def classification_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    flagged = decide(scores, threshold)
    return {
        "roc_auc": _round(roc_auc_score(y, scores)),
        "pr_auc": _round(average_precision_score(y, scores)),
        "log_loss": _round(log_loss(y, scores, labels=[0, 1])),
        "brier": _round(brier_score_loss(y, scores)),
        "threshold": _round(threshold),
        "precision": _round(precision_score(y, flagged, zero_division=0)),
        "recall": _round(recall_score(y, flagged, zero_division=0)),
        "f1": _round(f1_score(y, flagged, zero_division=0)),
        "flag_rate": _round(flagged.mean()),
        "positive_rate": _round(np.mean(y)),
        "n": len(y),
    }


def _rates(y: np.ndarray, flagged: np.ndarray) -> dict[str, float | None]:
    positives, negatives = y == 1, y == 0
    return {
        "n": len(y),
        "positive_rate": _round(y.mean()) if len(y) else None,
        "selection_rate": _round(flagged.mean()) if len(y) else None,
        "tpr": _round(flagged[positives].mean()) if positives.any() else None,
        "fpr": _round(flagged[negatives].mean()) if negatives.any() else None,
    }


def fairness(
    y: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float, max_gap: float
) -> dict[str, Any]:
    """Selection rate, TPR and FPR per group, and the largest gap between groups for each."""
    flagged = decide(scores, threshold)
    per_group = {
        str(name): _rates(y[groups == name], flagged[groups == name])
        for name in sorted(set(groups.tolist()))
    }
    gaps = {}
    for rate in ("selection_rate", "tpr", "fpr"):
        values = [g[rate] for g in per_group.values() if g[rate] is not None]
        gaps[rate] = _round(max(values) - min(values)) if len(values) > 1 else 0.0
    return {
        "groups": per_group,
        "gaps": gaps,
        "max_gap": max_gap,
        "flagged_for_review": sorted(rate for rate, gap in gaps.items() if gap > max_gap),
    }


def _downsample(frame: pd.DataFrame, points: int) -> pd.DataFrame:
    if len(frame) <= points:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, points).round().astype(int))
    return frame.iloc[keep]


def curves(
    y: np.ndarray, scores: np.ndarray, threshold: float, bins: int, points: int
) -> dict[str, pd.DataFrame]:
    fpr, tpr, _ = roc_curve(y, scores)
    precision, recall, _ = precision_recall_curve(y, scores)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    calibration = [
        {
            "bin": i,
            "mean_predicted": _round(scores[which == i].mean()),
            "fraction_positive": _round(y[which == i].mean()),
            "count": int((which == i).sum()),
        }
        for i in range(bins)
        if (which == i).any()
    ]
    flagged = decide(scores, threshold)
    return {
        "roc": _downsample(pd.DataFrame({"fpr": fpr.round(6), "tpr": tpr.round(6)}), points),
        "pr": _downsample(
            pd.DataFrame({"recall": recall.round(6), "precision": precision.round(6)}), points
        ),
        "calibration": pd.DataFrame(calibration),
        "confusion": pd.DataFrame({"actual": y.astype(int), "predicted": flagged}),
    }


def figures(tables: Mapping[str, pd.DataFrame], out: Path) -> None:
    """PNG versions of the plots (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    metadata = {"Software": None}  # no version stamp: same data → same bytes
    specs = {
        "roc": ("fpr", "tpr", "False positive rate", "True positive rate", "ROC curve"),
        "pr": ("recall", "precision", "Recall", "Precision", "Precision-recall curve"),
        "calibration": (
            "mean_predicted", "fraction_positive", "Mean predicted probability",
            "Fraction of positives", "Calibration",
        ),
    }  # fmt: skip
    for name, (x, y, xlabel, ylabel, title) in specs.items():
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        ax.plot(tables[name][x], tables[name][y], marker="o" if name == "calibration" else None)
        if name in {"roc", "calibration"}:
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.02))
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", metadata=metadata)
        plt.close(fig)
    matrix = confusion_matrix(
        tables["confusion"]["actual"], tables["confusion"]["predicted"], labels=[0, 1]
    )
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center")
    ax.set(
        xticks=[0, 1], yticks=[0, 1], xlabel="Predicted", ylabel="Actual", title="Confusion matrix"
    )
    fig.tight_layout()
    fig.savefig(out / "confusion.png", metadata=metadata)
    plt.close(fig)


def run(params: Params) -> dict[str, Any]:
    trained = TrainedModel.load(params.path("model_pickle"))
    schema = trained.schema
    test = read_split(params.path("test_split"), text_columns(schema))
    y = test[schema.target].to_numpy()
    scores = trained.pipeline.predict_proba(encode(test, schema))[:, 1]
    options = params.read("evaluate")

    metrics = classification_metrics(y, scores, schema.threshold)
    write_json(metrics, params.path("metrics"))
    report: dict[str, Any] = {}
    if schema.group_column:
        groups = test[schema.group_column].astype(str).to_numpy()
        report = fairness(y, scores, groups, schema.threshold, float(options["max_fairness_gap"]))
    write_json(report, params.path("fairness"))

    tables = curves(
        y, scores, schema.threshold, int(options["calibration_bins"]), int(options["curve_points"])
    )
    plots = params.path("plots")
    plots.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(plots / f"{name}.csv", index=False, lineterminator="\n")
    figures(tables, params.path("figures"))

    write_model_card(
        params.path("model_card"),
        params=params,
        schema=schema,
        estimator=trained.estimator,
        metrics=metrics,
        fairness=report,
        split_sizes={**trained.rows, "test": len(test)},
    )
    return metrics


def main(argv: Sequence[str]) -> int:
    args = stage_args(argv, "metrics, plots, fairness and the model card on the test split")
    started = time.perf_counter()
    metrics = run(Params.load(args.root))
    print(
        f"evaluate: ROC AUC {metrics['roc_auc']:.4f}, PR AUC {metrics['pr_auc']:.4f}, "
        f"precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f} at threshold "
        f"{metrics['threshold']:.4f}, {time.perf_counter() - started:.1f}s"
    )
    return 0
