"""Small synthetic records, a schema and a profile for the drift tests (unit and integration)."""

from __future__ import annotations

import numpy as np

from {{ cookiecutter.package_name }}.features import Encoder, Feature, FeatureSchema

SCHEMA = FeatureSchema(
    features=[
        Feature("x0", "numeric"),
        Feature("x12", "money"),
        Feature("x5", "categorical", categories=("Monday", "Tuesday", "Wednesday")),
    ],
    threshold=0.5,
    model={"version": "v1"},
)
DRIFT_SETTINGS = {"psi_threshold": 0.2, "min_records": 200}


def records(rng: np.random.Generator, n: int, shift: float = 0.0) -> list[dict]:
    days = ["Monday", "Tuesday", "Wednesday"]
    weights = [0.5, 0.3, 0.2] if shift == 0 else [0.1, 0.3, 0.6]
    return [
        {
            "x0": float(rng.normal(shift, 1.0)),
            "x12": f"${abs(rng.normal(100 + 50 * shift, 20)):,.2f}",
            "x5": str(rng.choice(days, p=weights)) if rng.random() > 0.05 else None,
        }
        for _ in range(n)
    ]


def scores_for(matrix: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.nan_to_num(matrix[:, 0])))


def samples(rows: list[dict]) -> list[dict]:
    matrix = Encoder(SCHEMA).encode_records(rows)
    return [
        {"event": "prediction_sample", "features": row, "p_hat": float(p)}
        for row, p in zip(rows, scores_for(matrix), strict=True)
    ]
