"""The naive reference for ``bench``: dict → pandas DataFrame → clean → scikit-learn predict_proba.

This is how a model service is often first written, and what the real service is measured
against. It is bench-only (it imports pandas and scikit-learn, which the serving image does not
have). Its model is a scikit-learn pipeline of the usual shape (imputer + scaler for numbers,
one-hot for categoricals, logistic regression), fitted at start-up on ``BENCH_NAIVE_ROWS``
schema-generated rows labelled by the exported ONNX model, so it makes the same kind of
decision at the cost a pandas/scikit-learn request path really has.

Run by ``bench`` as ``uvicorn <package>.bench_naive:app`` with ``MODEL_DIR`` set.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .bench import sample_records
from .features import Encoder, parse_money, parse_percent
from .serving.model import Model


def clean(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """The typical hand-written cleaning step: parse the money and percent text columns."""
    frame = frame.copy()
    for name, kind in kinds.items():
        if kind in ("money", "percent"):
            parse = parse_money if kind == "money" else parse_percent
            frame[name] = frame[name].map(lambda v, p=parse: p(v) if isinstance(v, str) else v)
            frame[name] = frame[name].astype("float64")
    return frame


def to_frame(rows: list[dict[str, Any]], kinds: dict[str, str]) -> pd.DataFrame:
    """JSON null → NaN for numbers (so pandas infers float columns); None stays a category."""
    return pd.DataFrame(
        [
            {k: np.nan if v is None and kinds[k] != "categorical" else v for k, v in row.items()}
            for row in rows
        ]
    )


def build() -> tuple[Any, dict[str, str]]:
    model = Model.load(os.environ.get("MODEL_DIR", "models"))
    schema = model.schema
    kinds = {f.name: f.kind for f in schema.features}
    records = sample_records(schema, int(os.environ.get("BENCH_NAIVE_ROWS", "3000")), seed=7)
    labels = model.predict(Encoder(schema).encode_records(records)) >= schema.threshold
    if labels.all() or not labels.any():  # a degenerate sample: keep both classes present
        labels[: len(labels) // 2] = ~labels[: len(labels) // 2]
    frame = clean(to_frame(records, kinds)[schema.names], kinds)
    numeric = [n for n, k in kinds.items() if k != "categorical"]
    categorical = [n for n, k in kinds.items() if k == "categorical"]
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
                ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        LogisticRegression(max_iter=1000),
    )
    pipeline.fit(frame, labels.astype(np.int64))
    return pipeline, kinds


PIPELINE, KINDS = build()
app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> dict[str, Any]:
    row = await request.json()
    frame = clean(to_frame([row], KINDS), KINDS)
    p = float(PIPELINE.predict_proba(frame)[0, 1])
    # Fitted on the exported model's decisions, so its own boundary is at 0.5.
    return {"p_hat": p, "business_outcome": int(p >= 0.5)}
