"""The prediction service through its ASGI app (no network): every status code it promises."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import generate_latest
from starlette.testclient import TestClient

from {{ cookiecutter.package_name }} import bench
from {{ cookiecutter.package_name }}.bench import sample_records
from {{ cookiecutter.package_name }}.features import Encoder, FeatureSchema
from {{ cookiecutter.package_name }}.monitoring.drift import read_samples
from {{ cookiecutter.package_name }}.serving.app import create_app
from {{ cookiecutter.package_name }}.serving.bodies import as_columns, infer_request
from {{ cookiecutter.package_name }}.serving.config import DEFAULT_MODEL_NAME, Settings
from {{ cookiecutter.package_name }}.serving.guard import Guard
from {{ cookiecutter.package_name }}.serving.logs import ACCESS_LOGGER, SAMPLE_LOGGER, JsonFormatter
from {{ cookiecutter.package_name }}.serving.model import Model
from {{ cookiecutter.package_name }}.serving.service import Service

KEY = "test-key-1"
HEADERS = {"X-API-Key": KEY}
LEAKS = ("Traceback", 'File "', ".py", "Error:", "Exception", "/home/", "/tmp/", "site-packages")  # noqa: S108


def settings_for(model_dir: Path, **overrides: Any) -> Settings:
    base = Settings(
        model_dir=model_dir,
        api_keys=(KEY, "test-key-2"),
        max_batch_rows=50,
        max_body_bytes=256 * 1024,
        offload_body_bytes=8 * 1024,
    )
    return replace(base, **overrides)


@pytest.fixture(scope="module")
def service(served_model_dir: Path, records: list[dict[str, Any]]) -> Service:
    # Bodies of a few records stay on the event loop, the 40-record batches go to the worker
    # thread, however few columns the contract has (8 KB, or less for short rows).
    offload = min(8 * 1024, len(json.dumps({"records": records[:8]})))
    service = Service(settings_for(served_model_dir, offload_body_bytes=offload))
    service.load()
    return service


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def schema(served_model_dir: Path) -> FeatureSchema:
    return FeatureSchema.load(served_model_dir / "features.json")


@pytest.fixture(scope="module")
def records(schema: FeatureSchema) -> list[dict[str, Any]]:
    return sample_records(schema, 40, seed=3, missing=0.1)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["status"] == status
    assert body["request_id"] and response.headers["x-request-id"] == body["request_id"]
    if code:
        assert body["error"]["code"] == code
    for leak in LEAKS:
        assert leak not in response.text, f"{leak!r} leaked into {response.text}"
    return body["error"]


def one_field(error: dict[str, Any]) -> dict[str, Any]:
    assert len(error["fields"]) == 1, error
    return error["fields"][0]


# -- 200 ---------------------------------------------------------------------------------------
def test_single_record_matches_the_exported_model(client, service, schema, records) -> None:
    response = client.post("/v1/predict", json=records[0], headers=HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = float(service.model.predict(Encoder(schema).encode_records(records[:1]))[0])
    assert body["p_hat"] == pytest.approx(expected, abs=1e-6)
    assert body["business_outcome"] == int(expected >= schema.threshold)
    assert body["model_version"] == schema.model["version"]
    assert response.headers["x-request-id"]


def test_batch_matches_the_encoder_and_model_row_by_row(client, service, schema, records) -> None:
    response = client.post("/v1/predict", json={"records": records}, headers=HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = service.model.predict(Encoder(schema).encode_records(records))
    got = np.array([p["p_hat"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    outcomes = [p["business_outcome"] for p in body["predictions"]]
    assert outcomes == [int(p >= schema.threshold) for p in expected]
    assert body["model_version"] == schema.model["version"]


def test_a_batch_big_enough_for_the_worker_thread_gives_the_same_answers(
    client, service, records
) -> None:
    body = json.dumps({"records": records}).encode()
    assert len(body) > service.settings.offload_body_bytes  # exercises the thread path
    small = client.post("/v1/predict", json={"records": records[:2]}, headers=HEADERS).json()
    big = client.post("/v1/predict", content=body, headers=HEADERS).json()
    assert big["predictions"][:2] == small["predictions"]


# -- the columnar batch {"columns": {...}} -----------------------------------------------------
def test_columns_give_the_same_predictions_as_records(client, service, schema, records) -> None:
    by_rows = client.post("/v1/predict", json={"records": records}, headers=HEADERS)
    body = json.dumps(as_columns(records)).encode()
    assert len(body) > service.settings.offload_body_bytes  # the worker-thread path
    by_columns = client.post("/v1/predict", content=body, headers=HEADERS)
    assert by_rows.status_code == by_columns.status_code == 200, by_columns.text
    assert by_columns.json() == by_rows.json()  # same shape, same numbers, same order
    expected = service.model.predict(Encoder(schema).encode_records(records))
    got = np.array([p["p_hat"] for p in by_columns.json()["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    small = client.post("/v1/predict", json=as_columns(records[:2]), headers=HEADERS)  # inline
    assert small.json()["predictions"] == by_rows.json()["predictions"][:2]


def numeric_names(schema: FeatureSchema) -> list[str]:
    return [f.name for f in schema.features if f.kind == "numeric"]


def binary_request(schema: FeatureSchema, records: list[dict]) -> tuple[bytes, dict[str, str]]:
    features = [(f.name, f.kind) for f in schema.features]
    body, header_length = infer_request(features, records, binary=True)
    return body, {**HEADERS, "Inference-Header-Content-Length": header_length.decode()}


INFER = f"/v2/models/{DEFAULT_MODEL_NAME}/infer"


def test_binary_tensors_give_the_same_predictions_as_records(
    client, service, schema, records
) -> None:
    by_rows = client.post("/v1/predict", json={"records": records}, headers=HEADERS)
    body, headers = binary_request(schema, records)
    assert len(body) > service.settings.offload_body_bytes  # the worker-thread path
    answer = client.post(INFER, content=body, headers=headers)
    assert by_rows.status_code == answer.status_code == 200, answer.text
    size = int(answer.headers["inference-header-content-length"])
    meta = json.loads(answer.content[:size])
    assert [o["name"] for o in meta["outputs"]] == ["p_hat", "business_outcome"]
    p_hat = np.frombuffer(answer.content[size : size + 4 * len(records)], "<f4")
    assert p_hat.tolist() == [p["p_hat"] for p in by_rows.json()["predictions"]]


# FP32 tensors cannot hold 1e39: the client's cast makes it infinite, refused as such.
@pytest.mark.parametrize(
    ("value", "says"), [(float("inf"), "infinite"), (1e39, "infinite"), (float("nan"), None)]
)
def test_binary_bad_values_are_422_naming_field_and_row(client, schema, records, value, says):
    name = numeric_names(schema)[0]
    rows = [dict(r) for r in records[:3]]
    rows[1][name] = value
    with np.errstate(over="ignore"):
        body, headers = binary_request(schema, rows)
    answer = client.post(INFER, content=body, headers=headers)
    if says is None:  # NaN is a missing number, fine for a nullable feature
        assert answer.status_code == 200, answer.text
        return
    assert answer.status_code == 422 and set(answer.json()) == {"error"}  # the protocol's body
    assert f"'{name}' (row 1)" in answer.json()["error"] and says in answer.json()["error"]


def test_columns_may_leave_out_a_nullable_column(client, schema, records) -> None:
    numeric = next(f.name for f in schema.features if f.kind == "numeric")
    rows = [{**r, numeric: None} for r in records[:5]]
    columns = as_columns(rows)
    del columns["columns"][numeric]
    left_out = client.post("/v1/predict", json=columns, headers=HEADERS)
    assert left_out.status_code == 200, left_out.text
    assert (
        left_out.json()
        == client.post("/v1/predict", json={"records": rows}, headers=HEADERS).json()
    )


def column_error(client: TestClient, payload: Any) -> dict[str, Any]:
    return assert_error(
        client.post("/v1/predict", json=payload, headers=HEADERS), 422, "invalid_input"
    )


def test_columns_unknown_column_is_422_naming_it(client, records) -> None:
    payload = as_columns(records[:3])
    payload["columns"]["surprise"] = [1, 2, 3]
    error = column_error(client, payload)
    assert one_field(error)["field"] == "surprise" and "surprise" in error["message"]


def test_columns_of_unequal_length_are_422_naming_them(client, schema, records) -> None:
    numeric = [f.name for f in schema.features][:2]
    payload = as_columns(records[:4])
    payload["columns"][numeric[0]].pop()
    payload["columns"][numeric[1]].append(payload["columns"][numeric[1]][0])
    error = column_error(client, payload)
    assert {f["field"] for f in error["fields"]} == {numeric[0], numeric[1]}
    assert numeric[0] in error["message"] and numeric[1] in error["message"]


def test_columns_over_the_row_limit_are_422(client, service, records) -> None:
    rows = (records * 2)[: service.settings.max_batch_rows + 1]
    error = column_error(client, as_columns(rows))
    assert str(service.settings.max_batch_rows) in error["fields"][0]["message"]
    error = column_error(client, {"columns": {name: [] for name in records[0]}})
    assert "between 1 and" in error["fields"][0]["message"]


@pytest.mark.parametrize("payload", [{"columns": {}}, {"columns": []}, {"columns": None}])
def test_columns_of_the_wrong_shape_are_422(client, payload) -> None:
    assert one_field(column_error(client, payload))["field"] == "columns"


def test_columns_refuse_nan_and_infinity(client, schema, records) -> None:
    numeric = next(f.name for f in schema.features if f.kind == "numeric")
    for literal, status in (("NaN", 400), ("Infinity", 400), ("-Infinity", 400), ("1e999", 422)):
        payload = as_columns(records[:3])
        payload["columns"][numeric][1] = "@@"
        text = json.dumps(payload).replace('"@@"', literal)
        response = client.post("/v1/predict", content=text.encode(), headers=HEADERS)
        error = assert_error(response, status)
        if status == 422:
            assert (one_field(error)["field"], one_field(error)["row"]) == (numeric, 1)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("money", "$12,00"),
        ("money", "NaN"),
        ("percent", "67"),
        ("categorical", "Funday"),
        ("numeric", "abc"),
        ("numeric", True),
        ("numeric", 1e39),
    ],
)
def test_columns_bad_values_are_422_naming_field_and_row(
    client, schema, records, kind, value
) -> None:
    name = next(f.name for f in schema.features if f.kind == kind)
    payload = as_columns(records[:5])
    payload["columns"][name][3] = value
    field = one_field(column_error(client, payload))
    assert (field["field"], field["row"]) == (name, 3), field


@pytest.fixture(scope="module")
def strict_client(
    served_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The served model with its first numeric feature made non-nullable in features.json."""
    model_dir = tmp_path_factory.mktemp("strict-model")
    schema = FeatureSchema.load(served_model_dir / "features.json")
    features = list(schema.features)
    first = next(i for i, f in enumerate(features) if f.kind == "numeric")
    features[first] = replace(features[first], nullable=False)
    # A schema the service accepts: exported like `export` does, so its version covers the change.
    code_version = schema.model["version"].rpartition("+")[0]
    strict = replace(schema, features=tuple(features)).exported(
        schema.model["sha256"], code_version, schema.model, schema.metrics
    )
    strict.save(model_dir / "features.json")
    (model_dir / "model.onnx").write_bytes((served_model_dir / "model.onnx").read_bytes())
    service = Service(settings_for(model_dir))
    service.load()
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield client


def test_columns_missing_a_non_nullable_column_is_422_naming_it(
    strict_client, schema, records
) -> None:
    required = next(f.name for f in schema.features if f.kind == "numeric")
    payload = as_columns(records[:3])
    assert strict_client.post("/v1/predict", json=payload, headers=HEADERS).status_code == 200
    del payload["columns"][required]
    error = column_error(strict_client, payload)
    assert one_field(error)["field"] == required and "missing" in one_field(error)["message"]
    payload = as_columns(
        [{**r, required: None} if i == 1 else r for i, r in enumerate(records[:3])]
    )
    field = one_field(column_error(strict_client, payload))
    assert (field["field"], field["row"]) == (required, 1)


def test_money_and_percent_accept_numbers_strings_and_null(client, schema, records) -> None:
    money = next(f.name for f in schema.features if f.kind == "money")
    percent = next(f.name for f in schema.features if f.kind == "percent")
    variants = [("($12,000)", "67%"), (-12000, 67), (None, None), ("", "")]
    answers = []
    for m, p in variants:
        response = client.post(
            "/v1/predict", json={**records[0], money: m, percent: p}, headers=HEADERS
        )
        assert response.status_code == 200, response.text
        answers.append(response.json()["p_hat"])
    assert answers[0] == answers[1] and answers[2] == answers[3]


def test_model_info(client, schema) -> None:
    response = client.get("/v1/model", headers=HEADERS)
    assert response.status_code == 200
    info = response.json()
    assert info["version"] == schema.model["version"]
    assert info["sha256"] == schema.model["sha256"]
    assert info["threshold"] == schema.threshold
    assert info["metrics"] == schema.metrics
    assert [f["name"] for f in info["features"]] == schema.names


def test_health(client) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


# -- 400 / 401 / 404 ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body", [b"{", b"not json", b'{"%s": NaN}', b'{"%s": Infinity}', b"\xff\xfe", b""]
)
def test_unparsable_json_is_400(client, schema, body) -> None:
    if b"%s" in body:  # a real feature of the contract, so only the NaN/Infinity is wrong
        body = body.replace(b"%s", json.dumps(schema.names[0])[1:-1].encode())
    assert_error(client.post("/v1/predict", content=body, headers=HEADERS), 400, "malformed_json")


@pytest.mark.parametrize(
    "headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY + "x"}, {"X-API-Key": ""}]
)
def test_missing_or_wrong_key_is_401(client, records, headers) -> None:
    assert_error(client.post("/v1/predict", json=records[0], headers=headers), 401, "unauthorised")
    assert_error(client.get("/v1/model", headers=headers), 401)


def test_every_configured_key_works(client, records) -> None:
    for key in (KEY, "test-key-2"):
        assert (
            client.post("/v1/predict", json=records[0], headers={"X-API-Key": key}).status_code
            == 200
        )


def test_unknown_route_and_method_use_the_envelope(client) -> None:
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/v1/predict", headers=HEADERS), 405, "method_not_allowed")


# -- 422 ---------------------------------------------------------------------------------------
def test_wrong_type_names_the_field(client, schema, records) -> None:
    numeric = next(f.name for f in schema.features if f.kind == "numeric")
    error = assert_error(
        client.post("/v1/predict", json={**records[0], numeric: "abc"}, headers=HEADERS),
        422,
        "invalid_input",
    )
    assert one_field(error)["field"] == numeric and numeric in error["message"]


def test_booleans_are_not_numbers(client, schema, records) -> None:
    numeric = next(f.name for f in schema.features if f.kind == "numeric")
    error = assert_error(
        client.post("/v1/predict", json={**records[0], numeric: True}, headers=HEADERS), 422
    )
    assert one_field(error)["field"] == numeric


def test_unknown_field_is_rejected(client, records) -> None:
    error = assert_error(
        client.post("/v1/predict", json={**records[0], "surprise": 1}, headers=HEADERS), 422
    )
    assert one_field(error)["field"] == "surprise"


def test_batch_errors_name_field_and_row(client, schema, records) -> None:
    money = next(f.name for f in schema.features if f.kind == "money")
    rows = [dict(r) for r in records[:5]]
    rows[3][money] = "$12,00"  # misplaced thousands separator
    error = assert_error(client.post("/v1/predict", json={"records": rows}, headers=HEADERS), 422)
    assert one_field(error) | {"message": ""} == {"field": money, "row": 3, "message": ""}
    rows = [dict(r) for r in records[:5]]
    rows[2]["bogus"] = 1
    error = assert_error(client.post("/v1/predict", json={"records": rows}, headers=HEADERS), 422)
    assert (one_field(error)["field"], one_field(error)["row"]) == ("bogus", 2)


@pytest.mark.parametrize(
    "value", ["12,000 USD", "$1,2,3", "(12)", "NaN", "inf", "1e999", "$", "--5"]
)
def test_bad_money_strings_are_422_naming_the_field(client, schema, records, value) -> None:
    money = next(f.name for f in schema.features if f.kind == "money")
    response = client.post("/v1/predict", json={**records[0], money: value}, headers=HEADERS)
    if value == "(12)":  # accounting negative without a currency sign is valid money
        assert response.status_code == 200
        return
    assert one_field(assert_error(response, 422))["field"] == money


@pytest.mark.parametrize("value", ["67", "67 %%", "abc%", "%", "NaN%"])
def test_bad_percent_strings_are_422_naming_the_field(client, schema, records, value) -> None:
    percent = next(f.name for f in schema.features if f.kind == "percent")
    response = client.post("/v1/predict", json={**records[0], percent: value}, headers=HEADERS)
    assert one_field(assert_error(response, 422))["field"] == percent


def test_unknown_category_is_422(client, schema, records) -> None:
    categorical = next(f for f in schema.features if f.kind == "categorical")
    response = client.post(
        "/v1/predict", json={**records[0], categorical.name: "Funday"}, headers=HEADERS
    )
    error = assert_error(response, 422)
    assert one_field(error)["field"] == categorical.name
    assert categorical.categories[0] in one_field(error)["message"]


@pytest.mark.parametrize("number", [1e39, -3.5e38, 10**40])
def test_numbers_beyond_float32_are_422(client, schema, records, number) -> None:
    numeric = next(f.name for f in schema.features if f.kind == "numeric")
    response = client.post("/v1/predict", json={**records[0], numeric: number}, headers=HEADERS)
    assert one_field(assert_error(response, 422))["field"] == numeric


def test_a_record_the_model_cannot_score_is_422_naming_its_row(
    client, service, records, monkeypatch
) -> None:
    """Finite but extreme inputs can overflow the model to NaN: never a 200 with a null score."""
    real = service.model.predict

    def predict(tensor: np.ndarray) -> np.ndarray:
        p = real(tensor)
        p[1] = np.nan
        return p

    monkeypatch.setattr(service.model, "predict", predict)
    response = client.post("/v1/predict", json={"records": records[:3]}, headers=HEADERS)
    problem = one_field(assert_error(response, 422))
    assert problem["row"] == 1 and "no score" in problem["message"]


def test_huge_json_number_is_422_not_500(client, schema, records) -> None:
    numeric = next(f.name for f in schema.features if f.kind == "numeric")
    body = json.dumps({**records[0], numeric: 0}).replace(f'"{numeric}": 0', f'"{numeric}": 1e999')
    response = client.post("/v1/predict", content=body.encode(), headers=HEADERS)
    assert one_field(assert_error(response, 422))["field"] == numeric


@pytest.mark.parametrize(
    "payload", [{"records": []}, {"records": "x"}, {"records": [1]}, [], 3, "s"]
)
def test_malformed_shapes_are_422(client, payload) -> None:
    assert_error(client.post("/v1/predict", json=payload, headers=HEADERS), 422, "invalid_input")


def test_batch_over_the_row_limit_is_422(client, service, records) -> None:
    rows = (records * 2)[: service.settings.max_batch_rows + 1]
    error = assert_error(client.post("/v1/predict", json={"records": rows}, headers=HEADERS), 422)
    assert one_field(error)["field"] == "records"
    assert str(service.settings.max_batch_rows) in one_field(error)["message"]


def test_a_record_mentioning_records_as_a_value_is_still_a_single_record(
    client, schema, records
) -> None:
    numeric = next(f.name for f in schema.features if f.kind == "numeric")
    response = client.post("/v1/predict", json={**records[0], numeric: "records"}, headers=HEADERS)
    assert one_field(assert_error(response, 422))["field"] == numeric


# -- 413 ---------------------------------------------------------------------------------------
def test_declared_body_over_the_limit_is_413_before_reading(client, service) -> None:
    body = b"{" + b" " * service.settings.max_body_bytes + b"}"
    assert_error(client.post("/v1/predict", content=body, headers=HEADERS), 413, "body_too_large")


def test_streamed_body_over_the_limit_is_413(client, service) -> None:
    chunk = b" " * 65536

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b"{"
        for _ in range(service.settings.max_body_bytes // len(chunk) + 2):
            yield chunk
        yield b"}"

    assert_error(
        client.post("/v1/predict", content=chunks(), headers=HEADERS), 413, "body_too_large"
    )


def test_bad_content_length_is_400(client) -> None:
    response = client.post(
        "/v1/predict", content=b"{}", headers={**HEADERS, "Content-Length": "abc"}
    )
    assert response.status_code == 400


# -- 503 / 504 / 500 ---------------------------------------------------------------------------
def test_not_ready_until_the_model_is_loaded(served_model_dir, records) -> None:
    cold = Service(settings_for(served_model_dir))  # never loaded
    client = TestClient(create_app(cold), raise_server_exceptions=False)  # no lifespan: stays cold
    assert client.get("/health/live").status_code == 200
    assert_error(client.get("/health/ready"), 503, "not_ready")
    response = client.post("/v1/predict", json=records[0], headers=HEADERS)
    assert_error(response, 503, "not_ready")
    assert response.headers["retry-after"]


def test_lifespan_loads_the_model_in_the_background(served_model_dir, records) -> None:
    cold = Service(settings_for(served_model_dir))
    with TestClient(create_app(cold)) as client:
        for _ in range(200):
            if client.get("/health/ready").status_code == 200:
                break
            time.sleep(0.05)
        assert client.post("/v1/predict", json=records[0], headers=HEADERS).status_code == 200


def test_the_app_survives_a_second_lifespan(served_model_dir, records) -> None:
    service = Service(settings_for(served_model_dir, offload_body_bytes=0))  # all in the thread
    service.load()
    app = create_app(service)
    for _ in range(2):  # test clients (and schemathesis) start and stop the lifespan repeatedly
        with TestClient(app) as again:
            assert again.post("/v1/predict", json=records[0], headers=HEADERS).status_code == 200


def test_draining_flips_readiness_but_still_serves(service, client, records) -> None:
    try:
        service.begin_drain()
        assert_error(client.get("/health/ready"), 503, "not_ready")
        assert client.post("/v1/predict", json=records[0], headers=HEADERS).status_code == 200
    finally:
        service.draining = False


def test_internal_errors_leak_nothing(served_model_dir, records, monkeypatch) -> None:
    service = Service(settings_for(served_model_dir))
    service.load()

    def explode(tensor: np.ndarray) -> np.ndarray:
        raise RuntimeError(f"secret detail in {served_model_dir}/model.onnx")

    monkeypatch.setattr(service.model, "predict", explode)
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/predict", json=records[0], headers={**HEADERS, "X-Request-ID": "abc-123"}
        )
    error = assert_error(response, 500, "internal_error")
    assert response.json()["request_id"] == "abc-123"
    assert "secret" not in response.text and "RuntimeError" not in error["message"]


async def _asgi(
    app: Any, path: str, body: bytes = b"{}", method: str = "POST"
) -> tuple[int, dict, bytes]:
    """One request straight into an ASGI app; returns (status, headers, body)."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-length", str(len(body)).encode())],
        "http_version": "1.1",
        "scheme": "http",
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }
    sent = [{"type": "http.request", "body": body, "more_body": False}]
    messages: list[dict] = []

    async def receive() -> dict:
        return sent.pop() if sent else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, content


class Blocking:
    """An ASGI app whose prediction route waits for ``release``; health answers at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["path"] == "/v1/predict":
            await receive()  # the body: from here on the request timeout runs
            self.entered.set()
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def guarded(inner: Blocking, service: Service) -> Guard:
    """The guard as the app builds it: /v1/predict is its hot (limited) route, here answered
    by ``inner``."""

    async def predict(exchange: Any) -> None:
        await inner(exchange.scope, exchange.receive, exchange.send)

    return Guard(inner, service, hot_routes={"/v1/predict": predict})


def test_overload_is_shed_with_503_and_retry_after_while_health_answers(service) -> None:
    settings = replace(service.settings, max_concurrency=2)
    guard_service = Service(settings, metrics=None)

    async def scenario() -> None:
        inner = Blocking()
        guard = guarded(inner, guard_service)
        held = [asyncio.create_task(_asgi(guard, "/v1/predict")) for _ in range(2)]
        await inner.entered.wait()
        await asyncio.sleep(0.01)
        status, headers, body = await _asgi(guard, "/v1/predict")
        assert status == 503 and headers["retry-after"] == "1"
        assert json.loads(body)["error"]["code"] == "overloaded"
        assert (await _asgi(guard, "/health/live", method="GET"))[0] == 200
        inner.release.set()
        assert [s for s, _, _ in await asyncio.gather(*held)] == [200, 200]
        assert (await _asgi(guard, "/v1/predict"))[0] == 200  # capacity is back

    asyncio.run(scenario())
    text = generate_latest(guard_service.metrics.registry).decode()
    assert 'http_requests_rejected_total{reason="overload"} 1.0' in text


def test_server_side_timeout_is_504(service) -> None:
    timed = Service(replace(service.settings, request_timeout_s=0.05))

    async def scenario() -> None:
        inner = Blocking()
        status, headers, body = await _asgi(guarded(inner, timed), "/v1/predict")
        assert status == 504 and headers["x-request-id"]
        assert json.loads(body)["error"]["code"] == "timeout"

    asyncio.run(scenario())
    text = generate_latest(timed.metrics.registry).decode()
    assert 'http_requests_rejected_total{reason="timeout"} 1.0' in text


# -- request id, docs, metrics, logs -----------------------------------------------------------
def test_request_id_is_echoed_or_generated(client, records) -> None:
    given = client.post(
        "/v1/predict", json=records[0], headers={**HEADERS, "X-Request-ID": "req-42"}
    )
    assert given.headers["x-request-id"] == "req-42"
    unsafe = client.get("/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert (
        unsafe.headers["x-request-id"] != "bad id\twith spaces"
        and len(unsafe.headers["x-request-id"]) == 32
    )


def test_docs_are_off_by_default_and_on_when_enabled(client, served_model_dir) -> None:
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404
    service = Service(settings_for(served_model_dir, docs_enabled=True))
    with TestClient(create_app(service)) as docs_client:
        assert docs_client.get("/docs").status_code == 200
        spec = docs_client.get("/openapi.json").json()
    record = spec["components"]["schemas"]["PredictionRecord"]
    assert set(record["properties"]) == set(service.schema.names)
    assert record["additionalProperties"] is False
    columns = spec["components"]["schemas"]["PredictionColumns"]
    assert set(columns["properties"]) == set(service.schema.names)
    assert columns["additionalProperties"] is False
    numeric = next(f.name for f in service.schema.features if f.kind == "numeric")
    assert columns["properties"][numeric]["type"] == "array"  # a column is a list of values
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert {"$ref": "#/components/schemas/PredictionColumnBatch"} in body["schema"]["oneOf"]


def test_metrics_names_are_the_contract(client, service, records) -> None:
    client.post("/v1/predict", json=records[0], headers=HEADERS)
    text = generate_latest(service.metrics.registry).decode()
    for needle in (
        'http_requests_total{method="POST",route="/v1/predict",status="200"}',
        'http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/predict"}',
        'prediction_score_bucket{le="0.5"}',
        "prediction_score_count ",
        'model_info{sha256="' + service.model.sha256 + '",version="' + service.version + '"} 1.0',
        "model_ready 1.0",
        "http_requests_in_flight ",
        'http_requests_rejected_total{reason="body_too_large"}',
    ):
        assert needle in text, needle
    assert "_created" not in text


def test_one_json_log_line_per_request_without_payload(client, schema, records, caplog) -> None:
    money = next(f.name for f in schema.features if f.kind == "money")
    record = {**records[0], money: "$987,654.32"}
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        client.post("/v1/predict", json=record, headers={**HEADERS, "X-Request-ID": "log-1"})
    lines = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert len(lines) == 1
    entry = json.loads(JsonFormatter().format(lines[0]))
    assert (
        entry["request_id"] == "log-1"
        and entry["route"] == "/v1/predict"
        and entry["status"] == 200
    )
    assert entry["latency_ms"] > 0 and entry["model_version"] == schema.model["version"]
    assert "987,654" not in json.dumps(entry)


def test_prediction_samples_for_the_drift_job_are_opt_in(
    served_model_dir, client, records, caplog, tmp_path
) -> None:
    with caplog.at_level(logging.INFO, logger=SAMPLE_LOGGER):
        client.post("/v1/predict", json={"records": records[:5]}, headers=HEADERS)
    assert not [r for r in caplog.records if r.name == SAMPLE_LOGGER]  # off by default

    service = Service(settings_for(served_model_dir, prediction_sample_rate=1.0))
    service.load()
    caplog.clear()
    with (
        TestClient(create_app(service)) as sampled,
        caplog.at_level(logging.INFO, logger=SAMPLE_LOGGER),
    ):
        answer = sampled.post("/v1/predict", json={"records": records[:5]}, headers=HEADERS).json()
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == SAMPLE_LOGGER]
    assert len(lines) == 5
    (tmp_path / "samples.jsonl").write_text("\n".join(lines) + "\n")
    events = list(read_samples(tmp_path / "samples.jsonl"))  # what the drift job reads back
    assert [e["features"] for e in events] == records[:5]
    assert [e["p_hat"] for e in events] == [p["p_hat"] for p in answer["predictions"]]

    caplog.clear()  # the columnar form logs the same records
    with (
        TestClient(create_app(service)) as sampled,
        caplog.at_level(logging.INFO, logger=SAMPLE_LOGGER),
    ):
        sampled.post("/v1/predict", json=as_columns(records[:5]), headers=HEADERS)
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == SAMPLE_LOGGER]
    assert [json.loads(line)["features"] for line in lines] == records[:5]

    caplog.clear()  # binary tensors log the values they hold, not bytes
    body, headers = binary_request(service.schema, records[:5])
    with (
        TestClient(create_app(service)) as sampled,
        caplog.at_level(logging.INFO, logger=SAMPLE_LOGGER),
    ):
        assert sampled.post(INFER, content=body, headers=headers).status_code == 200
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == SAMPLE_LOGGER]
    logged = [json.loads(line)["features"] for line in lines]
    for row, sent in zip(logged, records[:5], strict=True):
        for feature in service.schema.features:  # numbers as float32, blanks as sent
            value, original = row[feature.name], sent[feature.name]
            if feature.kind == "numeric" and original is not None:
                assert value == float(np.float32(original))
            else:
                assert value in (original, "" if original is None else original)


def test_model_and_schema_from_different_exports_refuse_to_load(served_model_dir, tmp_path) -> None:
    schema = FeatureSchema.load(served_model_dir / "features.json")
    code_version = schema.model["version"].rpartition("+")[0]
    # A whole, valid schema of another export (another ONNX file), beside this ONNX file.
    schema.exported("0" * 64, code_version, schema.model, schema.metrics).save(
        tmp_path / "features.json"
    )
    (tmp_path / "model.onnx").write_bytes((served_model_dir / "model.onnx").read_bytes())
    with pytest.raises(Exception, match="different exports"):
        Model.load(tmp_path)


def test_bench_without_wrk_says_so_and_fails(served_model_dir, monkeypatch, capsys) -> None:
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    assert bench.main(["--model-dir", str(served_model_dir)]) == 2
    assert "wrk is not installed" in capsys.readouterr().err
