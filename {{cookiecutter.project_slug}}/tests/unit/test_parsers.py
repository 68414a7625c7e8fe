"""Every text parser on the request path and in training: linear time, and one meaning.

A backtracking pattern lets one short string hold the GIL for seconds (and so stop every other
request, the health checks and the metrics). Each parser is timed on adversarial inputs of
growing size and must grow at most linearly; a property test checks that training's cleaning and
the service's decoder read every string the same way.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.data.cleaning import CleaningError, clean_frame
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.features import (
    MAX_TEXT_CHARS,
    Feature,
    FeatureSchema,
    parse_money,
    parse_money_column,
    parse_number,
    parse_percent,
    parse_percent_column,
)
from {{ cookiecutter.package_name }}.serving.decoding import InvalidInput, RequestDecoder

SIZES = (1_000, 10_000, 100_000)
# Shapes that make backtracking patterns explode: runs of one character a pattern may take in
# several places, then a character that makes the match fail at the very end.
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "spaces": lambda n: " " * n + "x",
    "digits": lambda n: "1" * n + "x",
    "commas": lambda n: "1" + ",1" * (n // 2) + "x",
    "parentheses": lambda n: "(" + " " * n + "x",
    "dollar-spaces": lambda n: "$" + " \t" * (n // 2) + "1x",
    "percent": lambda n: "1" * n + " %x",
    "exponent": lambda n: "1" * n + "e" + "1" * n + "x",
}

SCHEMA = FeatureSchema(
    features=[Feature("amount", "money"), Feature("rate", "percent"), Feature("n", "numeric")],
    threshold=0.5,
)
DECODER = RequestDecoder(SCHEMA, max_rows=100_000)


def _refuses(parse: Callable[[str], object], text: str) -> None:
    try:
        parse(text)
    except (ValueError, InvalidInput):
        return
    raise AssertionError(f"{parse} accepted a {len(text)}-character adversarial string")


def _record(field: str) -> Callable[[str], object]:
    return lambda text: DECODER.decode(json.dumps({field: text}).encode())


def _cells(text: str) -> list[str]:
    """A column of short values cut from ``text``, about as long in all, ending in its tail
    (which holds the character that makes the match fail)."""
    return [text[:60]] * (len(text) // 60) + [text[-60:]]


def _column(field: str) -> Callable[[str], object]:
    return lambda text: DECODER.decode(json.dumps({"columns": {field: _cells(text)}}).encode())


def _cleaning(kind: str) -> Callable[[str], object]:
    contract = Contract(target="y", money=("m",), percent=("p",))
    column = {"money": "m", "percent": "p", "numeric": "x"}[kind]

    def clean(text: str) -> object:
        try:
            return clean_frame(pd.DataFrame({column: [text, text]}, dtype=object), contract)
        except CleaningError as exc:
            raise ValueError(str(exc)) from None

    return clean


PARSERS: dict[str, Callable[[str], object]] = {
    "parse_money": parse_money,
    "parse_percent": parse_percent,
    "parse_number": parse_number,
    "parse_money_column": lambda text: parse_money_column(_cells(text)),
    "parse_percent_column": lambda text: parse_percent_column(_cells(text)),
    "service record money": _record("amount"),
    "service record percent": _record("rate"),
    "service columns money": _column("amount"),
    "service columns percent": _column("rate"),
    "cleaning money": _cleaning("money"),
    "cleaning percent": _cleaning("percent"),
    "cleaning number": _cleaning("numeric"),
}


def _seconds(parse: Callable[[str], object], text: str, repeats: int = 5) -> float:
    """CPU seconds of the fastest of ``repeats`` calls: time this process spent running, so a
    busy machine (other tests beside this one) does not count."""
    best = math.inf
    for _ in range(repeats):
        started = time.process_time()
        _refuses(parse, text)
        best = min(best, time.process_time() - started)
    return best


@pytest.mark.parametrize("shape", list(ADVERSARIAL))
@pytest.mark.parametrize("parser", list(PARSERS))
def test_parsers_run_in_linear_time(parser: str, shape: str) -> None:
    parse, make = PARSERS[parser], ADVERSARIAL[shape]
    times = [_seconds(parse, make(size)) for size in SIZES]
    # Linear growth makes the 100 KB input take ~100x the 1 KB one; a quadratic pattern takes
    # ~10,000x and a cubic one (the old money pattern) far longer: seconds at 1 KB already. The
    # floor keeps timer noise on microsecond-scale calls from failing the test.
    ratio = SIZES[-1] / SIZES[0]
    assert times[-1] <= max(3 * ratio * times[0], 0.05), (parser, shape, times)


@pytest.mark.parametrize("parse", [parse_money, parse_percent, parse_number])
def test_a_text_longer_than_the_limit_is_refused_with_the_reason(parse) -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_TEXT_CHARS} are read"):
        parse("1" * (MAX_TEXT_CHARS + 1))


def test_the_service_refuses_a_long_money_string_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as info:
        DECODER.decode(json.dumps({"amount": " " * 300 + "x"}).encode())
    error = info.value.errors[0]
    assert error.field == "amount" and f"<= {MAX_TEXT_CHARS}" in error.message


# -- one meaning in training and serving ------------------------------------------------------
TEXTS = st.one_of(
    st.text(alphabet=" \t$(),.-%0123456789eE+", max_size=24),
    st.text(alphabet=" $(),.-%0123456789\u0661\u0662\uff13\u00a0\n", max_size=12),
    st.text(max_size=12),
)


def _training(kind: str, text: str) -> float | str:
    column = {"money": "amount", "percent": "rate"}[kind]
    contract = Contract(target="y", money=("amount",), percent=("rate",))
    try:
        frame = clean_frame(pd.DataFrame({column: [text]}, dtype=object), contract)
    except CleaningError:
        return "refused"
    return float(np.float32(frame[column].iloc[0]))


def _serving(kind: str, text: str, form: str) -> float | str:
    field = {"money": "amount", "percent": "rate"}[kind]
    body = {field: text} if form == "record" else {"columns": {field: [text]}}
    try:
        tensor, _ = DECODER.decode(json.dumps(body).encode())
    except InvalidInput:
        return "refused"
    return float(tensor[0, SCHEMA.names.index(field)])


def _same(a: float | str, b: float | str) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(text=TEXTS, kind=st.sampled_from(["money", "percent"]))
def test_training_and_serving_read_every_string_alike(text: str, kind: str) -> None:
    trained = _training(kind, text)
    for form in ("record", "columns"):
        served = _serving(kind, text, form)
        assert _same(trained, served), (kind, text, form, trained, served)
