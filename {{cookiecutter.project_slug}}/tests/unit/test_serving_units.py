"""Service building blocks in isolation: decoder ≡ encoder, settings, auth, score histogram."""

from __future__ import annotations

import io
import json
import logging
import math
import random

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from {{ cookiecutter.package_name }}.bench import sample_records
from {{ cookiecutter.package_name }}.features import (
    Encoder,
    Feature,
    FeatureSchema,
    is_blank,
    parse_money,
    parse_money_column,
    parse_money_lines,
    parse_percent,
    parse_percent_column,
    parse_percent_lines,
)
from {{ cookiecutter.package_name }}.serving.bodies import as_columns, infer_request
from {{ cookiecutter.package_name }}.serving.config import ConfigError, Settings
from {{ cookiecutter.package_name }}.serving.decoding import InvalidInput, MalformedBody, RequestDecoder
from {{ cookiecutter.package_name }}.serving.logs import ACCESS_LOGGER, AccessLog, JsonFormatter
from {{ cookiecutter.package_name }}.serving.metrics import SCORE_BUCKETS, ScoreHistogram
from {{ cookiecutter.package_name }}.serving.open_inference import InferenceDecoder


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


# Each money string and what parse_money makes of it (None: refused with a ValueError).
MONEY_EXPECTED: dict[str, float | None] = {
    "$1,234.56": 1234.56,
    "-$1,234.56": -1234.56,
    "($12,000)": -12000.0,
    "12000": 12000.0,
    " $ 7 ": 7.0,
    "- $ 5": -5.0,
    "( 5 )": -5.0,
    ".5": 0.5,
    "$.75": 0.75,
    "0": 0.0,
    "-0": -0.0,  # the sign kept, as float() keeps it
    "($0)": -0.0,
    "-$0.00": -0.0,
    "007": 7.0,
    "0,123": 123.0,
    "1,000": 1000.0,
    "1,234,567.891": 1234567.891,
    "(1,234)": -1234.0,
    "\t$3\n": 3.0,
    "$1,00": None,
    "1,0000": None,
    "$12,000.": None,
    "(-$5)": None,
    "($5": None,
    "$5)": None,
    "$-5": None,
    "$$5": None,
    "5$": None,
    "": None,
    " ": None,
    "abc": None,
    "1e5": None,
    "inf": None,
    "NaN": None,
    "$ 1 , 234": None,
    "12,34,567": None,
    "٣": None,  # Arabic-Indic digit three: ASCII digits only
    "$\uff11\uff12": None,  # fullwidth digits
    "\u0661\u0662\u0663": None,  # Arabic-Indic one two three
    "$" + "1" * 70: None,  # longer than MAX_TEXT_CHARS
}
MONEY_CASES = list(MONEY_EXPECTED)


@pytest.mark.parametrize(("text", "expected"), MONEY_EXPECTED.items())
def test_money_strings_parse_as_documented(text, expected) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="not a money amount"):
            parse_money(text)
    else:
        assert parse_money(text) == expected


PERCENT_CASES = [
    "67%",
    "-5%",
    "12.5%",
    "0%",
    "-0%",
    "007%",
    "5 %",
    " 7% ",
    "67",
    "%",
    "abc%",
    "NaN%",
    "1e2%",
    "٣%",
    "\uff11\uff12%",
    "1" * 70 + "%",
]


def per_value(parse, texts: list[str]) -> list[str] | str:
    try:
        return ["missing" if is_blank(text) else parse(text).hex() for text in texts]
    except ValueError as exc:
        return f"error: {exc}"


def whole_column(parse_column, texts: list[str]) -> list[str] | str:
    """The column parser's values as ``float.hex`` (exact, the sign of zero too)."""
    try:
        return ["missing" if math.isnan(v) else float(v).hex() for v in parse_column(texts)]
    except ValueError as exc:
        return f"error: {exc}"


@pytest.mark.parametrize(
    ("parse", "parse_column", "parse_lines", "cases", "nth"),
    [
        (parse_money, parse_money_column, parse_money_lines, MONEY_CASES, "${:,}.25".format),
        (parse_percent, parse_percent_column, parse_percent_lines, PERCENT_CASES, "{}.5%".format),
    ],
)
def test_column_parsers_agree_with_the_per_value_ones(
    parse, parse_column, parse_lines, cases, nth
) -> None:
    good = [text for text in cases if not isinstance(per_value(parse, [text]), str)]
    rng = random.Random(7)  # noqa: S311 - test data
    columns = [[text] for text in cases] + [[text, text] for text in good]
    columns += [good, good[::-1], cases]
    columns += [[*rng.sample(good, k=len(good)), bad] for bad in cases if bad not in good]
    columns.append(["1\n2", "3"])  # the joined form must not split one value into two
    columns += [["", *good, ""], [good[0], "", good[-1]], [""], good[:1] * 9]  # "" is missing
    columns += [["", "", "5", "", "", "", "7", ""], ["", ""]]  # runs of missing values
    many = [nth(i) for i in range(1_000)]  # every value distinct, then few distinct values
    columns += [many, rng.choices(good, k=1_000), [*many[:300], *rng.choices(good, k=700)]]
    for texts in columns:
        expected = per_value(parse, texts)
        assert whole_column(parse_column, texts) == expected, texts
        if not any("\n" in text for text in texts):  # as a binary BYTES tensor gives them
            assert whole_column(lambda t: parse_lines("\n".join(t)), texts) == expected, texts


def column_body(records: list[dict], drop: tuple[str, ...] = ()) -> bytes:
    names = [name for name in records[0] if name not in drop]
    return json.dumps({"columns": {name: [r[name] for r in records] for name in names}}).encode()


@pytest.mark.parametrize("rows", [1, 2, 257])
def test_columns_decode_to_the_same_tensor_as_records(schema, rows) -> None:
    records = sample_records(schema, rows, seed=rows + 10, missing=0.2)
    rng = random.Random(rows)  # noqa: S311 - test data
    for record in records:  # integers, plain numbers for money/percent and empty strings too
        record["a"] = rng.choice([record["a"], 3, -7, 0])
        record["amount usd"] = rng.choice([record["amount usd"], 1250, -3.5, "", " $ 7 "])
        record["rate"] = rng.choice([record["rate"], 12.5, "", "5 %", "7%"])
    decoder = RequestDecoder(schema, max_rows=10_000)
    decoded = decoder.decode_body(column_body(records))
    columns, form = decoded.tensor, decoded.form
    assert form == "columns" and columns.dtype == np.float32
    expected = Encoder(schema).encode_records(records)
    np.testing.assert_array_equal(columns, expected)  # NaN == NaN here
    as_records, _ = decoder.decode(json.dumps({"records": records}).encode())
    np.testing.assert_array_equal(columns, as_records)


def test_each_form_gives_back_the_rows_as_sent_for_the_sample_log(schema) -> None:
    records = sample_records(schema, 5, seed=3, missing=0.3)
    for record in records:
        record["b"] = 1.5 if record["b"] is None else record["b"]
    decoder = RequestDecoder(schema, max_rows=10)
    expected = [{name: record.get(name) for name in schema.names} for record in records]
    bodies = {
        "record": (json.dumps(records[0]).encode(), expected[:1]),
        "records": (json.dumps({"records": records}).encode(), expected),
        "columns": (json.dumps(as_columns(records)).encode(), expected),
    }
    for form, (body, rows) in bodies.items():
        decoded = decoder.decode_body(body)
        assert [decoded.record(i) for i in range(len(rows))] == rows, form


def test_left_out_nullable_columns_are_missing(schema) -> None:
    records = [{"b": 1.5, "region": "eu"}, {"b": -2, "region": "us"}]
    decoder = RequestDecoder(schema, max_rows=10)
    tensor, _ = decoder.decode(column_body(records))
    np.testing.assert_array_equal(tensor, Encoder(schema).encode_records(records))


def column_error(schema, columns: object, max_rows: int = 10) -> list[tuple]:
    with pytest.raises(InvalidInput) as info:
        RequestDecoder(schema, max_rows=max_rows).decode(json.dumps({"columns": columns}).encode())
    return [(e.field, e.row, e.message) for e in info.value.errors]


def test_column_errors_name_the_column_and_row(schema) -> None:
    ok = {"b": [1.0, 2.0, 3.0], "region": ["eu", "us", "eu"]}
    ((field, row, message),) = column_error(schema, {**ok, "surprise": [1, 2, 3]})
    assert (field, row) == ("surprise", None) and "unknown" in message
    ((field, row, message),) = column_error(schema, {"b": [1.0]})
    assert (field, row) == ("region", None) and "missing" in message
    ((field, row, message),) = column_error(schema, {**ok, "a": [1.0, 2.0]})
    assert (field, row) == ("a", None) and "2 values" in message and "3" in message
    errors = column_error(schema, {**ok, "a": [1.0], "c": [1.0, 2.0]})
    assert sorted(e[0] for e in errors) == ["a", "c"]
    ((field, row, message),) = column_error(schema, {**ok, "day": ["Mon", "Funday", None]})
    assert (field, row) == ("day", 1) and "'Mon'" in message
    ((field, row, _),) = column_error(schema, {**ok, "a": [1.0, None, "x"]})
    assert (field, row) == ("a", 2)
    ((field, row, message),) = column_error(schema, {**ok, "amount usd": ["$1", None, "$1,2"]})
    assert (field, row) == ("amount usd", 2) and "money" in message
    ((field, row, _),) = column_error(schema, {**ok, "rate": ["5%", "5", None]})
    assert (field, row) == ("rate", 1)
    ((field, row, _),) = column_error(schema, {**ok, "b": [1.0, None, 3.0]})
    assert (field, row) == ("b", 1)  # not nullable
    ((field, row, message),) = column_error(schema, {**ok, "c": [1.0, 1e39, 0.0]})
    assert (field, row) == ("c", 1) and "float32" in message
    ((field, row, _),) = column_error(schema, {**ok, "c": None})
    assert (field, row) == ("c", None)
    ((field, _, message),) = column_error(schema, {"b": [1.0] * 11, "region": ["eu"] * 11})
    assert field in ("b", "region") and "10" in message
    ((field, _, message),) = column_error(schema, {"b": [], "region": []})
    assert field in ("b", "region") and "between 1 and 10" in message
    for not_columns in ([], 3, None, "x"):
        ((field, _, _),) = column_error(schema, not_columns)
        assert field == "columns"


def test_columns_without_any_column_are_refused() -> None:
    schema = FeatureSchema(features=[Feature("a", "numeric")], threshold=0.5)
    ((field, _, message),) = column_error(schema, {})
    assert field == "columns" and "no columns" in message


def test_columns_refuse_nan_and_infinity(schema) -> None:
    decoder = RequestDecoder(schema, max_rows=10)
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        with pytest.raises(MalformedBody):
            decoder.decode(b'{"columns": {"b": [1.0, ' + literal + b'], "region": ["eu", "us"]}}')
    with pytest.raises(InvalidInput) as info:
        decoder.decode(b'{"columns": {"b": [1.0, 1e999], "region": ["eu", "us"]}}')
    assert (info.value.errors[0].field, info.value.errors[0].row) == ("b", 1)


def test_an_empty_string_or_nan_in_a_required_feature_is_refused_in_every_form() -> None:
    schema = FeatureSchema(
        features=[Feature("fee", "money", nullable=False), Feature("n", "numeric")],
        threshold=0.5,
    )
    decoder = RequestDecoder(schema, max_rows=10)
    bodies = [
        {"fee": "", "n": 1.0},
        {"records": [{"fee": "$1", "n": 1.0}, {"fee": "", "n": 2.0}]},
        {"columns": {"fee": ["$1", ""], "n": [1.0, 2.0]}},
        {"columns": {"fee": [3, ""], "n": [1.0, 2.0]}},  # numbers and strings mixed
    ]
    for body in bodies:
        with pytest.raises(InvalidInput) as info:
            decoder.decode(json.dumps(body).encode())
        ((error),) = info.value.errors
        assert error.field == "fee" and "required" in error.message, body
        assert error.row == (0 if "fee" in body else 1), body
    # the Open Inference Protocol's tensors: a blank string, and NaN for an amount as a number
    protocol = InferenceDecoder(schema, decoder, "m")
    rows = [{"fee": "$1", "n": 1.0}, {"fee": "", "n": 2.0}]
    for features in ([("fee", "money"), ("n", "numeric")], [("fee", "numeric"), ("n", "numeric")]):
        amounts = rows if features[0][1] == "money" else [{"fee": 1.0}, {"fee": None}]
        for binary in (True, False):
            with pytest.raises(InvalidInput) as info:
                protocol.decode(*infer_request(features, amounts, binary))
            ((error),) = info.value.errors
            assert (error.field, error.row) == ("fee", 1) and "required" in error.message
    Encoder(schema).encode_records([{"fee": "$1", "n": None}])  # training agrees on both
    with pytest.raises(ValueError, match="required"):
        Encoder(schema).encode_records([{"fee": "", "n": 1.0}])


def test_a_feature_named_columns_is_refused() -> None:
    schema = FeatureSchema(features=[Feature("columns", "numeric")], threshold=0.5)
    with pytest.raises(ValueError, match="batch key"):
        RequestDecoder(schema, max_rows=10)


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


def test_the_batched_access_line_is_the_json_formatters_line(caplog) -> None:
    """ACCESS writes its lines itself (no logging record per request): the bytes must be what
    the JSON formatter would have written, keys in the same order, reason only when there is."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = AccessLog()
    log.write_to(handler)
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        log.write("rid-1", "POST", "/v1/predict", 200, 1.25, "v1")
        log.write("rid-2", "POST", "/v1/predict", 499, 3.5, "v1", "client_closed")
    log.flush()
    direct = [json.loads(line) for line in stream.getvalue().splitlines()]
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, "", 0, "request", (), None)
    fields = {"request_id": "rid-1", "method": "POST", "route": "/v1/predict", "status": 200}
    record.__dict__.update({**fields, "latency_ms": 1.25, "model_version": "v1"})
    expected = json.loads(JsonFormatter().format(record))
    assert list(direct[0]) == list(expected)
    assert {k: v for k, v in direct[0].items() if k != "ts"} == {
        k: v for k, v in expected.items() if k != "ts"
    }
    assert direct[1]["reason"] == "client_closed" and "reason" not in direct[0]
