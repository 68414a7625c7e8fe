"""A stock Open Inference Protocol client (tritonclient) against the real server on 127.0.0.1.

It scores one row and a 10,000-row batch, as JSON and as binary tensors, and must get exactly
the answers of ``/v1/predict``; its mistakes get the protocol's errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from {{ cookiecutter.package_name }}.bench import sample_records
from {{ cookiecutter.package_name }}.features import FeatureSchema
from {{ cookiecutter.package_name }}.serving.config import DEFAULT_MODEL_NAME

from service_support import HEADERS, KEY, Server, request, server

pytestmark = pytest.mark.integration
ROWS = 10_000


@pytest.fixture(scope="module")
def schema(served_model_dir: Path) -> FeatureSchema:
    return FeatureSchema.load(served_model_dir / "features.json")


@pytest.fixture(scope="module")
def running(served_model_dir: Path, tmp_path_factory) -> Iterator[Server]:
    with server(served_model_dir, tmp_path_factory.mktemp("oip")) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(running: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(f"127.0.0.1:{running.port}", network_timeout=60)


def key() -> dict[str, str]:
    return {"X-API-Key": KEY}  # a new dict each call: the client adds its own headers to it


def inputs(schema: FeatureSchema, records: list[dict], binary: bool) -> list[triton.InferInput]:
    """One tensor per feature, with the datatype the model's metadata declares."""
    tensors = []
    for feature in schema.features:
        values = [record[feature.name] for record in records]
        if feature.kind == "numeric":
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
            tensor = triton.InferInput(feature.name, [len(values)], "FP32")
        else:
            array = np.array(["" if v is None else v for v in values], dtype=object)
            tensor = triton.InferInput(feature.name, [len(values)], "BYTES")
        tensors.append(tensor.set_data_from_numpy(array, binary_data=binary))
    return tensors


def v1_answers(srv: Server, records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    body = json.dumps(records[0] if len(records) == 1 else {"records": records}).encode()
    status, _, content = request(f"{srv.url}/v1/predict", body, HEADERS)
    assert status == 200, content[:300]
    answer = json.loads(content)
    rows = [answer] if len(records) == 1 else answer["predictions"]
    return (
        np.array([r["p_hat"] for r in rows], dtype=np.float32),
        np.array([r["business_outcome"] for r in rows], dtype=bool),
    )


@pytest.mark.parametrize("rows", [1, ROWS])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_the_stock_client_scores_exactly_like_v1(schema, running, client, rows, binary) -> None:
    # JSON has no NaN (the client would send it as a bare NaN): the JSON form gets no missing
    # numbers, the binary form gets them as NaN.
    records = sample_records(schema, rows, seed=rows, missing=0.05 if binary else 0.0)
    outputs = [
        triton.InferRequestedOutput("p_hat", binary_data=binary),
        triton.InferRequestedOutput("business_outcome", binary_data=binary),
    ]
    result = client.infer(
        DEFAULT_MODEL_NAME,
        inputs(schema, records, binary),
        outputs=outputs,
        request_id="oip-1",
        headers=key(),
    )
    p_hat, outcome = v1_answers(running, records)
    np.testing.assert_array_equal(result.as_numpy("p_hat"), p_hat)
    np.testing.assert_array_equal(result.as_numpy("business_outcome"), outcome)
    response = result.get_response()
    assert response["id"] == "oip-1" and response["model_name"] == DEFAULT_MODEL_NAME


def test_health_and_metadata_speak_the_protocol(schema, client) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(DEFAULT_MODEL_NAME)
    assert not client.is_model_ready("another-model")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata(DEFAULT_MODEL_NAME, headers=key())
    assert [i["name"] for i in metadata["inputs"]] == list(schema.names)
    kinds = {f.name: f.kind for f in schema.features}
    for tensor in metadata["inputs"]:
        assert tensor["datatype"] == ("FP32" if kinds[tensor["name"]] == "numeric" else "BYTES")
    assert [o["name"] for o in metadata["outputs"]] == ["p_hat", "business_outcome"]
    version = metadata["versions"][0]
    assert client.is_model_ready(DEFAULT_MODEL_NAME, model_version=version)


def _error(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def test_mistakes_get_the_protocol_errors(schema, running, client) -> None:
    records = sample_records(schema, 3, seed=4, missing=0.0)
    good = inputs(schema, records, binary=True)
    no_key = _error(lambda: client.infer(DEFAULT_MODEL_NAME, good, headers={}))
    assert no_key.status() == "401" and "X-API-Key" in no_key.message()
    unknown = _error(lambda: client.infer("another-model", good, headers=key()))
    assert unknown.status() == "404" and "another-model" in unknown.message()
    categorical = next(f for f in schema.features if f.kind == "categorical")
    bad = [t for t in inputs(schema, records, True) if t.name() != categorical.name]
    wrong = triton.InferInput(categorical.name, [3], "BYTES")
    bad.append(wrong.set_data_from_numpy(np.array(["nope"] * 3, dtype=object)))
    refused = _error(lambda: client.infer(DEFAULT_MODEL_NAME, bad, headers=key()))
    assert refused.status() == "422"
    assert f"'{categorical.name}' (row 0)" in refused.message() and "nope" in refused.message()
    numeric = next(f for f in schema.features if f.kind == "numeric")
    typed = [t for t in inputs(schema, records, True) if t.name() != numeric.name]
    as_text = triton.InferInput(numeric.name, [3], "BYTES")
    typed.append(as_text.set_data_from_numpy(np.array(["1"] * 3, dtype=object)))
    refused = _error(lambda: client.infer(DEFAULT_MODEL_NAME, typed, headers=key()))
    assert refused.status() == "422" and "datatype BYTES" in refused.message()
    # The same limits, metrics and access log as /v1/predict.
    metrics = request(f"http://127.0.0.1:{running.metrics_port}/metrics")[2].decode()
    route = f'route="/v2/models/{DEFAULT_MODEL_NAME}/infer"'
    assert f'{route},status="200"' in metrics.replace('method="POST",', "")
    assert f'{route},status="422"' in metrics.replace('method="POST",', "")
