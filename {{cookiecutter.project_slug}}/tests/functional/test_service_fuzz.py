"""Schemathesis fuzzes the service's own OpenAPI spec (generated from features.json): no 5xx.

Runs in-process against the ASGI app (no network) with schema-valid and schema-violating
bodies, with and without the API key. ``FUZZ_EXAMPLES`` sets the cases per operation and mode
(default 40). The operations are driven through Hypothesis directly because schemathesis'
``from_fixture`` pytest integration does not work with this pytest version.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from {{ cookiecutter.package_name }}.serving.app import create_app
from {{ cookiecutter.package_name }}.serving.config import Settings
from {{ cookiecutter.package_name }}.serving.service import Service

KEY = "fuzz-key"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))


@pytest.fixture(scope="module")
def api_schema(served_model_dir: Path) -> Any:
    service = Service(
        Settings(model_dir=served_model_dir, api_keys=(KEY,), docs_enabled=True, max_batch_rows=20)
    )
    service.load()
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(service))


def run_operation(
    operation: Any, mode: GenerationMode, headers: dict[str, str], examples: int
) -> dict[int, int]:
    """Status code counts of ``examples`` generated calls; fails on any 5xx."""
    codes: dict[int, int] = {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        # schemathesis' own checks: status codes, content types, headers and bodies as the
        # document says, and invalid data refused. Not "valid data accepted": the document cannot
        # say that every column of a columnar batch has the same length (JSON Schema has no such
        # rule), so a generated body may break it and be refused, correctly.
        response = case.call_and_validate(
            headers=headers, excluded_checks=[positive_data_acceptance]
        )
        codes[response.status_code] = codes.get(response.status_code, 0) + 1
        assert response.status_code < 500, (
            operation.label,
            response.status_code,
            response.text[:500],
        )
        if response.status_code >= 400:
            header = response.headers["x-request-id"]  # schemathesis keeps a list per header
            assert response.json()["request_id"] in (
                header if isinstance(header, list) else [header]
            )

    check()
    return codes


def fuzz(
    api_schema: Any, mode: GenerationMode, headers: dict[str, str], examples: int
) -> dict[str, dict[int, int]]:
    seen: dict[str, dict[int, int]] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue  # no parameters, so nothing to break
        seen[operation.label] = run_operation(operation, mode, headers, examples)
    return seen


def test_valid_bodies_are_scored_and_none_gives_5xx(api_schema) -> None:
    seen = fuzz(api_schema, GenerationMode.POSITIVE, {"X-API-Key": KEY}, EXAMPLES)
    assert seen["POST /v1/predict"].get(200, 0) > 0, seen  # the generator does produce valid input


def test_invalid_bodies_are_4xx_never_5xx(api_schema) -> None:
    seen = fuzz(api_schema, GenerationMode.NEGATIVE, {"X-API-Key": KEY}, EXAMPLES)
    predict = seen["POST /v1/predict"]
    # 401 too: negative cases may also break the X-API-Key header itself
    assert set(predict) <= {400, 401, 413, 422} and predict.get(422, 0) > 0, seen


def test_without_a_key_prediction_routes_are_401(api_schema) -> None:
    seen = fuzz(api_schema, GenerationMode.POSITIVE, {}, 5)
    assert set(seen["POST /v1/predict"]) == {401} and set(seen["GET /v1/model"]) == {401}, seen
