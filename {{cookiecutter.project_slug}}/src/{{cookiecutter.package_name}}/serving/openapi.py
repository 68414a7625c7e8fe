"""The OpenAPI document, generated from the msgspec types that decode requests and encode answers.

The request body schema comes from the decoder (itself built from ``features.json``), the answers
from ``responses.py`` and ``errors.py``: nothing here describes a body by hand. Each route lists
exactly the statuses the service can answer it with, so schemathesis' conformance checks hold.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .decoding import RequestDecoder
from .errors import ErrorEnvelope
from .guard import LIVE, MODEL, PREDICT, READY
from .responses import BatchPrediction, Live, ModelInfo, Prediction, Ready

REF = "#/components/schemas/{name}"
SECURITY = [{"ApiKey": []}]
PREDICT_SUMMARY = 'Score one record, or a batch as {"records": [...]} or {"columns": {...}}'
PREDICT_DESCRIPTION = (
    "One body, three forms, told apart by the object's first key: one record; "
    '`{"records": [...]}` (one object per row); or `{"columns": {"x0": [...], ...}}` (one array '
    "per feature, all of the same length; a nullable feature's column may be left out). Both "
    "batch forms hold 1 to MAX_BATCH_ROWS rows and get the same answer, one prediction per row in "
    "order. For large batches the Open Inference Protocol's binary tensors "
    "(POST /v2/models/{name}/infer) are the fast form."
)
ERRORS = {
    400: "the body is not JSON",
    401: "missing or wrong X-API-Key",
    413: "body over MAX_BODY_BYTES",
    422: "the body does not match the feature schema",
    503: "model not ready, or overloaded (see Retry-After)",
    504: "over REQUEST_TIMEOUT_S",
}


def _ref(struct: type) -> dict[str, str]:
    return {"$ref": REF.format(name=struct.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _json(_ref(ErrorEnvelope), ERRORS[status]) for status in statuses}


def document(title: str, version: str, decoder: RequestDecoder) -> dict[str, Any]:
    body, components = decoder.json_schema()
    _, answers = msgspec.json.schema_components(
        [Prediction, BatchPrediction, ErrorEnvelope, ModelInfo, Live, Ready], ref_template=REF
    )
    paths = {
        PREDICT: {
            "post": {
                "summary": PREDICT_SUMMARY,
                "description": PREDICT_DESCRIPTION,
                "operationId": "predict",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body}},
                },
                "responses": {
                    "200": _json(
                        {"oneOf": [_ref(Prediction), _ref(BatchPrediction)]},
                        "p_hat and business_outcome per record, with the model version",
                    ),
                    **_errors(400, 401, 413, 422, 503, 504),
                },
                "security": SECURITY,
            }
        },
        MODEL: {
            "get": {
                "summary": "The served model and its schema",
                "operationId": "model_info",
                "responses": {
                    "200": _json(_ref(ModelInfo), "version, threshold, metrics and inputs"),
                    **_errors(401, 503),
                },
                "security": SECURITY,
            }
        },
        LIVE: {
            "get": {
                "summary": "Liveness: the process answers",
                "operationId": "live",
                "responses": {"200": _json(_ref(Live), "the process is up")},
            }
        },
        READY: {
            "get": {
                "summary": "Readiness: model loaded and warmed, not draining",
                "operationId": "ready",
                "responses": {
                    "200": _json(_ref(Ready), "ready to score"),
                    **_errors(503),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": {**components, **answers},
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }
