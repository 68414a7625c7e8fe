"""Service building blocks in isolation: decoder ≡ encoder, settings, auth, score histogram."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from {{ cookiecutter.package_name }}.bench import sample_records
from {{ cookiecutter.package_name }}.features import (
    Encoder,
    Feature,
    FeatureSchema,
    _parse_money_checked,
    parse_money,
)
from {{ cookiecutter.package_name }}.serving.config import ConfigError, Settings
from {{ cookiecutter.package_name }}.serving.decoding import InvalidInput, MalformedBody, RequestDecoder
from {{ cookiecutter.package_name }}.serving.metrics import SCORE_BUCKETS, ScoreHistogram


@pytest.fixture(scope="module")
def schema() -> FeatureSchema:
    return FeatureSchema(
        features=[
            Feature("amount usd", "money"),  # a name that is no Python identifier
            Feature("a", "numeric"),
            Feature("day", "categorical", categories=("Mon", "Tue", "Wed")),
            Feature("b", "numeric", nullable=False),
            Feature("rate", "percent"),
            Feature("c", "numeric"),
            Feature("region", "categorical", categories=("eu", "us"), nullable=False),
        ],
        threshold=0.5,
    )


def encode_both(schema: FeatureSchema, records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    decoder = RequestDecoder(schema, max_rows=10_000)
    body = json.dumps({"records": records} if len(records) > 1 else records[0]).encode()
    tensor, is_batch = decoder.decode(body)
    assert is_batch == (len(records) > 1)
    return tensor, Encoder(schema).encode_records(records)


@pytest.mark.parametrize("rows", [1, 2, 257])
def test_decoder_matches_the_training_encoder(schema, rows) -> None:
    records = sample_records(schema, rows, seed=rows, missing=0.2)
    rng = random.Random(rows)  # noqa: S311 - test data
    for record in records:  # integers, plain numbers for money/percent and empty strings too
        record["a"] = rng.choice([record["a"], 3, -7, 0])
        record["amount usd"] = rng.choice([record["amount usd"], 1250, -3.5, "", " $ 7 "])
        record["rate"] = rng.choice([record["rate"], 12.5, "", "5 %"])
    decoded, encoded = encode_both(schema, records)
    assert decoded.dtype == np.float32 and decoded.shape == encoded.shape
    np.testing.assert_array_equal(np.isnan(decoded), np.isnan(encoded))
    np.testing.assert_array_equal(np.nan_to_num(decoded), np.nan_to_num(encoded))


def test_missing_optional_fields_are_nan_and_required_ones_are_named(schema) -> None:
    decoder = RequestDecoder(schema, max_rows=10)
    tensor, _ = decoder.decode(b'{"b": 1, "region": "eu"}')
    assert np.isnan(tensor[0, 0]) and np.isnan(tensor[0, 1]) and tensor[0, 2:5].sum() == 0
    with pytest.raises(InvalidInput) as info:
        decoder.decode(b'{"b": 1}')
    assert info.value.errors[0].field == "region" and "missing" in info.value.errors[0].message
    with pytest.raises(InvalidInput) as info:
        decoder.decode(b'{"records": [{"b": 1, "region": "eu"}, {"region": "us", "b": null}]}')
    error = info.value.errors[0]
    assert (error.field, error.row) == ("b", 1)


def test_not_json_is_malformed(schema) -> None:
    decoder = RequestDecoder(schema, max_rows=10)
    for body in (b"{", b'{"records": [', b'{"b": NaN}'):
        with pytest.raises(MalformedBody):
            decoder.decode(body)


def test_a_feature_named_records_is_refused() -> None:
    schema = FeatureSchema(features=[Feature("records", "numeric")], threshold=0.5)
    with pytest.raises(ValueError, match="batch key"):
        RequestDecoder(schema, max_rows=10)


MONEY_CASES = [
    "$1,234.56",
    "-$1,234.56",
    "($12,000)",
    "12000",
    " $ 7 ",
    ".5",
    "$.75",
    "0",
    "1,000",
    "$1,00",
    "1,0000",
    "$12,000.",
    "(-$5)",
    "($5",
    "$5)",
    "$-5",
    "$$5",
    "5$",
    "",
    " ",
    "abc",
    "1e5",
    "inf",
    "NaN",
    "1,234,567.891",
    "(1,234)",
    "$ 1 , 234",
    "12,34,567",
    "\t$3\n",
    "٣",
]


@pytest.mark.parametrize("text", MONEY_CASES)
def test_fast_money_parser_agrees_with_the_checked_one(text) -> None:
    try:
        expected: float | str = _parse_money_checked(text)
    except ValueError:
        expected = "error"
    try:
        got: float | str = parse_money(text)
    except ValueError:
        got = "error"
    assert got == expected


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {"API_KEYS": " k1 , k2,, ", "PORT": "8123", "MAX_BATCH_ROWS": "7", "DOCS_ENABLED": "yes"}
    )
    assert settings.api_keys == ("k1", "k2") and settings.port == 8123
    assert settings.max_batch_rows == 7 and settings.docs_enabled
    assert "k1" not in repr(settings)  # keys never reach a log line


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no API keys"),
        ({"API_KEYS": " , "}, "no API keys"),
        ({"AUTH_DISABLED": "maybe"}, "not a boolean"),
        ({"API_KEYS": "k", "PORT": "eighty"}, "not a int"),
        ({"API_KEYS": "k", "MAX_CONCURRENCY": "0"}, "at least 1"),
    ],
)
def test_settings_refuse_to_start(env, message) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_auth_disabled_is_explicit() -> None:
    assert Settings.from_env({"AUTH_DISABLED": "true"}).auth_disabled


def test_score_histogram_matches_prometheus_histogram() -> None:
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.random(500), np.array(SCORE_BUCKETS), [0.0, 1.0]])
    ours_registry, reference_registry = CollectorRegistry(), CollectorRegistry()
    ours = ScoreHistogram("prediction_score", "p", SCORE_BUCKETS)
    ours_registry.register(ours)
    reference = Histogram(
        "prediction_score", "p", buckets=SCORE_BUCKETS, registry=reference_registry
    )
    ours.observe_many(scores[:300])
    for value in scores[300:]:
        ours.observe_many(np.array([value]))  # the single-row path
    for value in scores:
        reference.observe(float(value))

    def lines(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        return [
            line
            for line in text.splitlines()
            if line.startswith("prediction_score") and "_created" not in line
        ]

    ours_lines, reference_lines = lines(ours_registry), lines(reference_registry)
    assert [line for line in ours_lines if "_sum" not in line] == [
        line for line in reference_lines if "_sum" not in line
    ]
    ours_sum = float(next(line for line in ours_lines if "_sum" in line).split()[-1])
    assert ours_sum == pytest.approx(float(scores.sum()))


WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8000/v1/predict
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.41ms  512.00us  21.04ms   91.00%
  Latency Distribution
     50%    3.31ms
     75%    3.52ms
     90%    3.80ms
     99%    1.02s
  23004 requests in 5.00s, 4.12MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   4600.72
Transfer/sec:    843.12KB
"""


def test_wrk_output_is_parsed() -> None:
    from {{ cookiecutter.package_name }}.bench import parse_wrk

    result = parse_wrk(WRK_OUTPUT)
    assert result["rps"] == 4600.72 and result["requests"] == 23004 and result["non_2xx"] == 3
    assert result["p50_ms"] == pytest.approx(3.31) and result["p99_ms"] == pytest.approx(1020.0)
