"""The Open Inference Protocol decoder in isolation: tensors ≡ /v1 columns, and every refusal.

The real client (tritonclient) against the real server is tests/integration/test_open_inference.py.
"""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import msgspec
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.bench import sample_records
from {{ cookiecutter.package_name }}.features import Feature, FeatureSchema
from {{ cookiecutter.package_name }}.serving.bodies import as_columns
from {{ cookiecutter.package_name }}.serving.decoding import InvalidInput, MalformedBody, RequestDecoder
from {{ cookiecutter.package_name }}.serving.open_inference import (
    InferenceDecoder,
    bytes_texts,
    category_codes,
)

SCHEMA = FeatureSchema(
    features=(
        Feature("amount usd", "money"),
        Feature("a", "numeric"),
        Feature("day", "categorical", categories=("Mon", "Tue", "Wed")),
        Feature("b", "numeric", nullable=False),
        Feature("rate", "percent"),
        Feature("region", "categorical", categories=("eu", "us"), nullable=False),
    ),
    threshold=0.5,
)
NUMBERS = {"a", "b"}


def _bytes_tensor(values: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def request(
    records: list[dict], binary: bool, drop: tuple[str, ...] = (), **changes: dict
) -> tuple[bytes, bytes | None]:
    """An inference request for ``records`` as tritonclient would build it."""
    inputs, chunks = [], []
    for feature in SCHEMA.features:
        if feature.name in drop:
            continue
        values = [r.get(feature.name) for r in records]
        tensor: dict = {"name": feature.name, "shape": [len(values)]}
        if feature.name in NUMBERS:
            tensor["datatype"] = "FP64"
            array = np.array([math.nan if v is None else v for v in values], dtype="<f8")
            data = array.tobytes() if binary else [None if v is None else v for v in values]
        else:
            tensor["datatype"] = "BYTES"
            texts = ["" if v is None else str(v) for v in values]
            data = _bytes_tensor(texts) if binary else texts
        if binary:
            tensor["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            tensor["data"] = data
        tensor.update(changes.get(feature.name, {}))
        inputs.append(tensor)
    header = json.dumps({"inputs": inputs, "id": "req-1"}).encode()
    return header + b"".join(chunks), (str(len(header)).encode() if binary else None)


@pytest.fixture(scope="module")
def decoders() -> tuple[RequestDecoder, InferenceDecoder]:
    v1 = RequestDecoder(SCHEMA, max_rows=1000)
    return v1, InferenceDecoder(SCHEMA, v1, "m")


def records_for(rows: int, seed: int) -> list[dict]:
    records = sample_records(SCHEMA, rows, seed=seed, missing=0.2)
    for record in records:
        record["b"] = 0.5 if record["b"] is None else record["b"]
    return records


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("rows", [1, 3, 257])
def test_tensors_decode_to_the_v1_tensor(decoders, rows, binary) -> None:
    v1, v2 = decoders
    records = records_for(rows, seed=rows)
    expected = v1.decode(json.dumps(as_columns(records)).encode())[0]
    inference = v2.decode(*request(records, binary))
    np.testing.assert_array_equal(inference.decoded.tensor, expected)  # NaN == NaN here
    assert inference.request_id == "req-1"
    # The rows for the sample log, as sent: a missing text is the empty string it was sent as.
    texts = {"amount usd", "rate"}
    sent = [
        {n: "" if r.get(n) is None and n in texts else r.get(n) for n in v1.names} for r in records
    ]
    assert [inference.decoded.record(i) for i in range(rows)] == sent


def test_nullable_inputs_may_be_left_out_and_nested_data_is_flattened(decoders) -> None:
    v1, v2 = decoders
    records = [{"b": 1.0, "region": "eu"}, {"b": 2.0, "region": "us"}]
    body, _ = request(records, False, drop=("amount usd", "a", "day", "rate"))
    nested, _ = request(
        records,
        False,
        drop=("amount usd", "a", "day", "rate"),
        b={"shape": [2, 1], "data": [[1.0], [2.0]]},
    )
    expected = v1.decode(json.dumps({"records": records}).encode())[0]
    for body_ in (body, nested):
        np.testing.assert_array_equal(v2.decode(body_, None).decoded.tensor, expected)


def test_money_and_percent_may_come_as_numbers(decoders) -> None:
    v1, v2 = decoders
    records = [{"amount usd": 12.5, "b": 1.0, "rate": 7.0, "region": "eu"}]
    numbers = {
        "amount usd": {"datatype": "FP64", "data": [12.5]},
        "rate": {"datatype": "FP32", "data": [7.0]},
    }
    body, _ = request(records, False, **numbers)
    expected = v1.decode(json.dumps(records[0]).encode())[0]
    np.testing.assert_array_equal(v2.decode(body, None).decoded.tensor, expected)


REFUSALS = {
    "unknown input": ({"a": {"name": "zz"}}, "zz", "no such input"),
    "bad datatype": ({"day": {"datatype": "FP32"}}, "day", "datatype FP32"),
    "bad shape": ({"a": {"shape": [2, 2]}}, "a", "is not [N] or [N, 1]"),
    "rows differ": ({"a": {"shape": [3], "data": [1.0, 2.0, 3.0]}}, "a", "other inputs have 2"),
    "too many values": ({"a": {"data": [1.0, 2.0, 3.0]}}, "a", "3 values for shape [2]"),
    "a string for a number": ({"a": {"data": ["x", 1.0]}}, "a", "Expected"),
    "out of float32 range": ({"b": {"data": [1e39, 1.0]}}, "b", "float32"),
    "unknown category": ({"day": {"data": ["Mon", "Fri"]}}, "day", "'Fri' is not one of"),
    "required category blank": ({"region": {"data": ["eu", ""]}}, "region", "required"),
    "bad money": ({"amount usd": {"data": ["$1", "12 dollars"]}}, "amount usd", "money"),
    "no data": ({"a": {"data": None}}, "a", "no data"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_every_mistake_is_refused_naming_the_input(decoders, case) -> None:
    _, v2 = decoders
    change, field, words = REFUSALS[case]
    records = [{"a": 1.0, "b": 1.0, "region": "eu"}, {"a": 2.0, "b": 2.0, "region": "us"}]
    header = json.loads(request(records, False)[0])
    for tensor in header["inputs"]:
        tensor.update(change.get(tensor["name"], {}))
        if tensor.get("data", 1) is None:
            del tensor["data"]
    with pytest.raises(InvalidInput) as info:
        v2.decode(json.dumps(header).encode(), None)
    error = info.value.errors[0]
    assert error.field == field and words in error.message, (error.field, error.message)


ONE_ROW = {
    "valid": {},
    "unknown category": {"day": {"data": ["Fri"]}},
    "blank optional category": {"day": {"data": [""]}},
    "required category blank": {"region": {"data": [""]}},
    "required number null": {"b": {"data": [None]}},
    "bad money": {"amount usd": {"data": ["12 dollars"]}},
    "money past float32": {"amount usd": {"data": ["$" + "9" * 40]}},
    "blank money": {"amount usd": {"data": [" "]}},
    "nested": {"a": {"shape": [1, 1], "data": [[2.5]]}},
}


@pytest.mark.parametrize("case", list(ONE_ROW))
def test_one_json_row_is_decoded_and_refused_exactly_as_through_the_columns(
    decoders, case, monkeypatch
) -> None:
    """A single JSON row takes ``/v1``'s record path; its tensor and its errors are those of the
    general columns path (the same request with that shortcut switched off)."""
    _, v2 = decoders
    records = [{"a": 1.0, "amount usd": "$12.50", "b": 1.0, "day": "Tue", "region": "us"}]
    body, _ = request(records, False, **ONE_ROW[case])

    def outcome() -> object:
        try:
            row = v2.decode(body, None).decoded.tensor[0].tolist()
            return ["missing" if math.isnan(v) else v for v in row]
        except InvalidInput as exc:
            return [(e.field, e.message, e.row) for e in exc.errors]

    shortcut = InferenceDecoder._one_row
    answers: list[object] = []

    def recorded(self: InferenceDecoder, values: list) -> object:
        answers.append(shortcut(self, values))
        return answers[-1]

    monkeypatch.setattr(InferenceDecoder, "_one_row", recorded)
    fast = outcome()
    # The shortcut answers every valid row and leaves every mistake it meets to the columns
    # path (some are refused before it: a required category left blank).
    if isinstance(fast[0], tuple):
        assert all(answer is None for answer in answers), (answers, fast)
    else:
        assert len(answers) == 1 and isinstance(answers[0], np.ndarray), answers
    monkeypatch.setattr(InferenceDecoder, "_one_row", lambda self, values: None)
    assert outcome() == fast


def test_a_required_input_left_out_and_bad_binary_data_are_refused(decoders) -> None:
    _, v2 = decoders
    records = [{"a": 1.0, "b": 1.0, "region": "eu"}]
    body, _ = request(records, False, drop=("b",))
    with pytest.raises(InvalidInput, match="required input is missing"):
        v2.decode(body, None)
    body, length = request(records, True)
    for broken, why in (
        (body + b"xx", "bytes of binary data after"),
        (body[:-1], "binary"),
    ):
        with pytest.raises(InvalidInput, match=why):
            v2.decode(broken, length)
    with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
        v2.decode(body, str(len(body) + 1).encode())
    with pytest.raises(MalformedBody, match="no NaN"):
        nan = b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [NaN]}]}'
        v2.decode(nan, None)


def test_binary_infinity_is_refused_with_its_row(decoders) -> None:
    _, v2 = decoders
    records = [{"a": 1.0, "b": 1.0, "region": "eu"}, {"a": 2.0, "b": 2.0, "region": "us"}]
    body, length = request(records, True)
    finite = np.array([1.0, 2.0], dtype="<f8").tobytes()
    infinite = np.array([1.0, math.inf], dtype="<f8").tobytes()
    assert finite in body
    with pytest.raises(InvalidInput) as info:
        v2.decode(body.replace(finite, infinite, 1), length)
    assert (info.value.errors[0].field, info.value.errors[0].row) == ("a", 1)


@pytest.mark.parametrize("binary", [True, False])
def test_the_answer_has_both_outputs_as_asked(decoders, binary) -> None:
    _, v2 = decoders
    body, _ = request([{"b": 1.0, "region": "eu"}, {"b": 2.0, "region": "us"}], False)
    header = json.loads(body)
    header["outputs"] = [{"name": "p_hat", "parameters": {"binary_data": binary}}]
    inference = v2.decode(json.dumps(header).encode(), None)
    p = np.array([0.25, 0.75], dtype=np.float32)
    content, header_length = v2.response(inference, "v1", p, threshold=0.5)
    if binary:
        meta = json.loads(content[: int(header_length)])
        assert np.frombuffer(content[int(header_length) :], "<f4").tolist() == p.tolist()
    else:
        assert header_length is None
        meta = json.loads(content)
        assert meta["outputs"][0]["data"] == p.tolist()
    assert [o["name"] for o in meta["outputs"]] == ["p_hat"]
    assert (meta["model_name"], meta["model_version"], meta["id"]) == ("m", "v1", "req-1")
    everything = v2.decode(body, None)
    full = json.loads(v2.response(everything, "v1", p, threshold=0.5)[0])
    assert [o["data"] for o in full["outputs"]] == [p.tolist(), [False, True]]


def test_model_metadata_lists_every_input_and_both_outputs(decoders) -> None:
    _, v2 = decoders
    meta = msgspec.to_builtins(v2.metadata("v7"))
    assert [i["name"] for i in meta["inputs"]] == SCHEMA.names
    datatypes = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert datatypes == {"amount usd": "BYTES", "a": "FP32", "day": "BYTES", "b": "FP32",
                         "rate": "BYTES", "region": "BYTES"}  # fmt: skip
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("p_hat", "FP32"),
        ("business_outcome", "BOOL"),
    ]


ALPHABET = ["", "a", "Mon", "é", "\n", "\x00", "$1,234", "x" * 300]


def test_binary_bytes_texts_decode_exactly_and_refuse_anything_else() -> None:
    rng = random.Random(5)  # noqa: S311 - test data
    for _ in range(500):
        values = [rng.choice(ALPHABET) + rng.choice(ALPHABET) for _ in range(rng.randint(1, 40))]
        data = _bytes_tensor(values)
        texts = bytes_texts(memoryview(data), "x", len(values))
        assert len(texts) == len(values)
        assert list(texts) == values
        for broken in (data + b"x", data[:-1], data + struct.pack("<I", 0)):
            with pytest.raises(InvalidInput):
                bytes_texts(memoryview(broken), "x", len(values))
    with pytest.raises(InvalidInput, match="UTF-8"):
        bytes_texts(memoryview(_bytes_tensor(["ok"]) + b"\x01\x00\x00\x00\xff"), "x", 2)


def test_binary_categories_are_matched_as_bytes() -> None:
    categories = ("Mon", "Tue", "Wednesday")
    values = ["Tue", "", "Wednesday", "Mon", ""]
    codes = category_codes(memoryview(_bytes_tensor(values)), "day", 5, categories, False)
    assert codes.tolist() == [1, -1, 2, 0, -1]
    with pytest.raises(InvalidInput) as info:
        category_codes(memoryview(_bytes_tensor(["Mon", "Tues"])), "day", 2, categories, False)
    assert info.value.errors[0].row == 1
    with pytest.raises(InvalidInput, match="required"):
        category_codes(memoryview(_bytes_tensor(["Mon", ""])), "day", 2, categories, True)


# Texts that differ only past a 64-bit word, only in length, only by a NUL at the end, or not at
# all in their first bytes: what matching categories a word at a time could confuse.
CATEGORY_TEXTS = [
    *("a", "ab", "Mon", "Monday", "Mon\x00", "\x00", "é", "日本", "September", "Sept"),
    *("x" * 7, "x" * 8, "x" * 9, "x" * 16, "x" * 17, "y" * 64, "x" * 8 + "\x00"),
]


def _expected_codes(values: list[str], categories: tuple[str, ...], required: bool) -> Any:
    """What ``category_codes`` must answer, one value at a time: the codes, or (row, error)."""
    for row, value in enumerate(values):
        if value and value not in categories:
            return (row, "not one of")
    if required and "" in values:
        return (values.index(""), "required")
    return [categories.index(value) if value else -1 for value in values]


def test_binary_categories_match_exactly_whatever_their_texts() -> None:
    rng = random.Random(11)  # noqa: S311 - test data
    for _ in range(2_000):
        categories = tuple(rng.sample(CATEGORY_TEXTS, rng.randint(1, 8)))
        others = [*categories, "", *([rng.choice([*CATEGORY_TEXTS, "z" * 300])] * 2)]
        values = [rng.choice(others) for _ in range(rng.randint(1, 30))]
        required = rng.random() < 0.3
        try:
            got: Any = category_codes(
                memoryview(_bytes_tensor(values)), "c", len(values), categories, required
            ).tolist()
        except InvalidInput as exc:
            error = exc.errors[0]
            got = (error.row, "required" if "required" in error.message else "not one of")
        assert got == _expected_codes(values, categories, required), (categories, values)
