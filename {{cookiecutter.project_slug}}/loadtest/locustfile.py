"""Staging load test for the prediction service.

    API_KEY=... locust -f loadtest/locustfile.py --host https://<staging-host> \
        --headless -u 200 -r 20 -t 5m --csv loadtest/out

The records come from the service's own ``GET /v1/model`` (the feature schema), so the file
never goes stale when the features change. ``BATCH_ROWS`` (default 100) sets the batch size of
the occasional batch request (as records to ``/v1/predict``, and as binary tensors through the
Open Inference Protocol, the form batch clients should use); ``WAIT_MIN`` / ``WAIT_MAX``
(seconds) pace each user.
Only point it at environments you own.
"""

from __future__ import annotations

import json
import os
import random
import urllib.request
from typing import Any

from locust import HttpUser, between, events, task

from {{ cookiecutter.package_name }}.serving.bodies import infer_request
from {{ cookiecutter.package_name }}.serving.config import DEFAULT_MODEL_NAME

API_KEY = os.environ.get("API_KEY", "")
MODEL_NAME = os.environ.get("MODEL_NAME", DEFAULT_MODEL_NAME)
BATCH_ROWS = int(os.environ.get("BATCH_ROWS", "100"))
SCHEMA: list[dict[str, Any]] = []


def fake_value(feature: dict[str, Any], rng: random.Random) -> Any:
    if feature.get("nullable", True) and rng.random() < 0.02:
        return None
    kind = feature["kind"]
    if kind == "categorical":
        return rng.choice(feature["categories"])
    if kind == "money":
        amount = rng.lognormvariate(7, 1.5)
        return f"(${amount:,.2f})" if rng.random() < 0.2 else f"${amount:,.2f}"
    if kind == "percent":
        return f"{rng.uniform(0, 100):.0f}%"
    return rng.gauss(0, 1)


@events.test_start.add_listener
def load_schema(environment: Any, **_: Any) -> None:
    """Read the feature list once, from the service itself."""
    url = f"{environment.host}/v1/model"
    request = urllib.request.Request(url, headers={"X-API-Key": API_KEY})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - host under test
        SCHEMA[:] = json.loads(response.read())["features"]


class ModelUser(HttpUser):
    wait_time = between(
        float(os.environ.get("WAIT_MIN", "0.05")), float(os.environ.get("WAIT_MAX", "0.2"))
    )

    def on_start(self) -> None:
        self.client.headers.update({"X-API-Key": API_KEY})
        self.rng = random.Random()  # noqa: S311 - fake load, not secrets

    def record(self) -> dict[str, Any]:
        return {feature["name"]: fake_value(feature, self.rng) for feature in SCHEMA}

    @task(20)
    def predict_one(self) -> None:
        with self.client.post(
            "/v1/predict", json=self.record(), name="/v1/predict [1]", catch_response=True
        ) as r:
            if r.status_code != 200 or not 0.0 <= r.json().get("p_hat", -1) <= 1.0:
                r.failure(f"status {r.status_code}")

    @task(1)
    def predict_batch(self) -> None:
        body = {"records": [self.record() for _ in range(BATCH_ROWS)]}
        with self.client.post(
            "/v1/predict", json=body, name=f"/v1/predict [{BATCH_ROWS}]", catch_response=True
        ) as r:
            if r.status_code != 200 or len(r.json().get("predictions", [])) != BATCH_ROWS:
                r.failure(f"status {r.status_code}")

    @task(1)
    def infer_binary_batch(self) -> None:
        features = [(feature["name"], feature["kind"]) for feature in SCHEMA]
        records = [self.record() for _ in range(BATCH_ROWS)]
        body, header_length = infer_request(features, records, binary=True)
        with self.client.post(
            f"/v2/models/{MODEL_NAME}/infer",
            data=body,
            headers={"Inference-Header-Content-Length": (header_length or b"").decode()},
            name=f"/v2/models/<name>/infer [{BATCH_ROWS} binary]",
            catch_response=True,
        ) as r:
            if r.status_code != 200 or "inference-header-content-length" not in r.headers:
                r.failure(f"status {r.status_code}")

    @task(1)
    def model_info(self) -> None:
        self.client.get("/v1/model")
