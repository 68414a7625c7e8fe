"""The one feature schema shared by training and serving, and the encoder derived from it.

``export`` writes the schema to ``models/features.json``; the service reads the same file. The
request model, the encoder, the model card and the docs all come from it, so training and
serving cannot disagree on columns, types, categories or the decision threshold.

This module imports only the standard library, NumPy and msgspec: it is on the serving request
path, where pandas and scikit-learn are never imported.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

# 2: features.json carries a checksum, and the model version covers the schema (see model_version).
SCHEMA_VERSION = 2
KINDS = ("numeric", "money", "percent", "categorical")

# Text parsing. Every pattern here runs in linear time on any input: the values come from HTTP
# clients and raw data files, and a backtracking pattern (adjacent unbounded quantifiers over
# the same characters) lets one 300-byte string hold the GIL for seconds. So: every quantifier
# that could give characters back is possessive (``*+``, ``++``, ``?+``), digits are ASCII only
# (``re.ASCII``: no Arabic-Indic or fullwidth digits), and a text longer than MAX_TEXT_CHARS is
# refused before any pattern sees it. tests/unit/test_parsers.py times them on hostile inputs.
MAX_TEXT_CHARS = 64  # "$999,999,999,999.99" is 19 characters
ASCII_SPACE = " \t\n\r\f\v"

_NUMBER = r"(?:[0-9]{1,3}+(?:,[0-9]{3})++(?:\.[0-9]++)?+|[0-9]++(?:\.[0-9]++)?+|\.[0-9]++)"
# "$1,234.56", "-$1,234.56", "($12,000)" (accounting negative), "12000", " $ 7 ".
_MONEY_RE = re.compile(rf"\s*+(\()?+\s*+(-)?+\s*+\$?+\s*+({_NUMBER})\s*+(\))?+\s*+", re.ASCII)
# The same shape with a loose number, to tell a misplaced separator from other mistakes.
_MONEY_LOOSE_RE = re.compile(
    r"\s*+(?P<open>\()?+\s*+(?P<sign>-)?+\s*+\$?+\s*+(?P<num>[0-9][0-9,]*+(?:\.[0-9]++)?+|\.[0-9]++)"
    r"\s*+(?P<close>\))?+\s*+",
    re.ASCII,
)
_PERCENT_RE = re.compile(r"\s*+(-?+[0-9]++(?:\.[0-9]++)?+)\s*+%\s*+", re.ASCII)
_DECIMAL_RE = re.compile(
    r"\s*+[-+]?+(?:[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)(?:[eE][-+]?+[0-9]++)?+\s*+", re.ASCII
)


class FieldError(ValueError):
    """A bad value, and where it is: the field (a feature, a column, a body key) and, when
    known, the row. The one error type for "this value, here" in training (encoding, cleaning)
    and serving (decoding; the service answers it as a 422 naming field and row)."""

    def __init__(self, field: str | None, message: str, row: int | None = None):
        self.field, self.message, self.row = field, message, row
        where = f"{field!r}" if row is None else f"{field!r} (row {row})"
        super().__init__(f"{where}: {message}")


def preview(text: str, limit: int = 40) -> str:
    """``repr`` of a value for an error message, cut short: a client may send megabytes."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


def is_blank(text: str) -> bool:
    """A money/percent/number text that means "missing": empty or ASCII whitespace only.

    Training (``data/cleaning.py``) and serving (``serving/decoding.py``) both ask this one
    function, so a blank value is missing in both or in neither.
    """
    return not text.strip(ASCII_SPACE)


def _check_length(text: str, what: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"not {what}: {len(text)} characters, at most {MAX_TEXT_CHARS} are read")


def parse_money(text: str) -> float:
    """Parse a money string: ``"$1,234.56"`` → 1234.56, ``"($12,000)"`` → -12000.0.

    Raises ``ValueError`` for anything else (never returns NaN for a malformed value).
    """
    _check_length(text, "a money amount")
    match = _MONEY_RE.fullmatch(text)
    if match is None or (match[1] is None) != (match[4] is None) or (match[1] and match[2]):
        raise ValueError(_money_mistake(text))
    number = match[3]
    value = float(number.replace(",", "") if "," in number else number)
    return -value if (match[1] or match[2]) else value


def _money_mistake(text: str) -> str:
    """Why ``text`` is not a money amount, for the error message (only on the error path)."""
    match = _MONEY_LOOSE_RE.fullmatch(text)
    if not match or bool(match["open"]) != bool(match["close"]):
        return f"not a money amount: {preview(text)}"
    if match["open"] and match["sign"]:
        return f"not a money amount (two negative signs): {preview(text)}"
    return f"not a money amount (misplaced thousands separator): {preview(text)}"


def parse_percent(text: str) -> float:
    """Parse a percent string: ``"67%"`` → 67.0. Raises ``ValueError`` otherwise."""
    _check_length(text, "a percentage")
    match = _PERCENT_RE.fullmatch(text)
    if not match:
        raise ValueError(f"not a percentage: {preview(text)}")
    return float(match[1])


def parse_number(text: str) -> float:
    """Parse a plain number written as text (a raw CSV or SQL ``TEXT`` cell): ``"-1.5e3"``.

    Stricter than ``float()``, which also reads "nan", "inf", "1_000" and non-ASCII digits.
    """
    _check_length(text, "a number")
    if _DECIMAL_RE.fullmatch(text) is None:
        raise ValueError(f"not a number: {preview(text)}")
    return float(text)


# Whole-column forms of the two parsers, for a batch's money/percent columns. They recognise
# only a strict subset of what ``parse_money``/``parse_percent`` accept (ASCII digits, no
# whitespace, the same grouping and sign rules), where the parsed value is plainly the text
# without "$", "," and "%", with "(...)" read as a minus sign. One regex checks the whole
# column joined by newlines (which that subset cannot contain) and msgspec converts the plain
# decimals left in one call (``_plain_numbers``). Anything else - spaces, a long value, a single
# bad value - falls back to the per-value parser, so the accepted strings, the values and the
# error messages stay those of ``parse_money``/``parse_percent``
# (``tests/unit/test_serving_units.py`` checks they agree, to the sign of a zero).
# Every line is at most MAX_TEXT_CHARS long, so the fast path accepts nothing the per-value
# parser would refuse for its length.
_SHORT = rf"(?=[^\n]{{0,{MAX_TEXT_CHARS}}}+(?:\n|\Z))"
_MONEY_LINE = rf"(?:\(\$?+{_NUMBER}\)|-?+\$?+{_NUMBER})"
_MONEY_COLUMN_RE = re.compile(
    rf"(?:{_SHORT}(?:{_MONEY_LINE})?+\n)*+{_SHORT}(?:{_MONEY_LINE})?+", re.ASCII
)
# The plain decimals left, comma-separated (JSON's array syntax, for ``_plain_numbers``).
_MONEY_TO_PLAIN = str.maketrans({"$": None, ",": None, "(": "-", ")": None, "\n": ","})
_PERCENT_LINE = r"-?+[0-9]++(?:\.[0-9]++)?+%"
_PERCENT_COLUMN_RE = re.compile(
    rf"(?:{_SHORT}(?:{_PERCENT_LINE})?+\n)*+{_SHORT}(?:{_PERCENT_LINE})?+", re.ASCII
)
_PERCENT_TO_PLAIN = str.maketrans({"%": None, "\n": ","})


# msgspec reads a JSON array of numbers in C, correctly rounded like ``float()``: the plain
# decimals of a validated column go through it as one array (see ``_plain_numbers``).
_FLOATS = msgspec.json.Decoder(list[float | None])


def _plain_numbers(plain: str) -> np.ndarray:
    """Comma-separated plain decimals ("-1234.5"; "" = missing) → float64, NaN where missing:
    the same values as ``float()`` of each, ~2x faster."""
    text = plain
    if ",," in text:  # a missing value between two others (twice: ",,," leaves one ",,")
        text = text.replace(",,", ",null,").replace(",,", ",null,")
    if not text or text.startswith(","):
        text = "null" + text
    if text.endswith(","):
        text += "null"
    text = f"[{text}]"
    # JSON reads the integer -0 as +0, float("-0") gives -0.0 (and "-0," is only ever "-0").
    if "-0," in text:
        text = text.replace("-0,", "-0.0,")
    if text.endswith("-0]"):
        text = text[:-1] + ".0]"
    try:
        values = _FLOATS.decode(text)
    except msgspec.DecodeError:  # not JSON's number syntax ("007", ".5"): float() reads those
        return np.array([float(x) if x else math.nan for x in plain.split(",")])
    return np.array(values, dtype=np.float64)  # None → NaN


def _each(texts: Iterable[str], one: Callable) -> np.ndarray:
    """The per-value parser over every text (blank = NaN): what the fast path must equal."""
    return np.array([math.nan if is_blank(text) else one(text) for text in texts])


def _parse_lines(
    joined: str, whole: re.Pattern[str], table: dict[int, Any], one: Callable
) -> np.ndarray:
    if whole.fullmatch(joined) is None:
        return _each(joined.split("\n"), one)
    return _plain_numbers(joined.translate(table))


def _parse_column(
    texts: Sequence[str], whole: re.Pattern[str], table: dict[int, Any], one: Callable
) -> np.ndarray:
    joined = "\n".join(texts)  # TypeError if a value is not a string
    if joined.count("\n") != len(texts) - 1:  # a value holds a newline: read each alone
        return _each(texts, one)
    return _parse_lines(joined, whole, table, one)


def parse_money_column(texts: Sequence[str]) -> np.ndarray:
    """``[parse_money(t) for t in texts]`` with blanks read as missing (NaN), as the encoder
    reads them; several times faster. Raises ``ValueError`` alike, ``TypeError`` for a
    non-string."""
    return _parse_column(texts, _MONEY_COLUMN_RE, _MONEY_TO_PLAIN, parse_money)


def parse_percent_column(texts: Sequence[str]) -> np.ndarray:
    """``[parse_percent(t) for t in texts]`` with blanks read as missing (NaN), as the encoder
    reads them; several times faster. Raises ``ValueError`` alike, ``TypeError`` for a
    non-string."""
    return _parse_column(texts, _PERCENT_COLUMN_RE, _PERCENT_TO_PLAIN, parse_percent)


def parse_money_lines(joined: str) -> np.ndarray:
    """``parse_money_column(joined.split("\\n"))``, for values that come joined already."""
    return _parse_lines(joined, _MONEY_COLUMN_RE, _MONEY_TO_PLAIN, parse_money)


def parse_percent_lines(joined: str) -> np.ndarray:
    """``parse_percent_column(joined.split("\\n"))``, for values that come joined already."""
    return _parse_lines(joined, _PERCENT_COLUMN_RE, _PERCENT_TO_PLAIN, parse_percent)


@dataclass(frozen=True)
class Feature:
    """One input column as the model sees it."""

    name: str
    kind: str
    nullable: bool = True
    categories: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"feature {self.name!r}: unknown kind {self.kind!r}, use one of {KINDS}"
            )
        if (self.kind == "categorical") != bool(self.categories):
            raise ValueError(
                f"feature {self.name!r}: categories are required exactly for categoricals"
            )
        if len(set(self.categories)) != len(self.categories) or "" in self.categories:
            raise ValueError(
                f'feature {self.name!r}: each category once, and none empty ("" is missing)'
            )

    @property
    def width(self) -> int:
        """Number of slots in the model's input tensor (one-hot width for categoricals)."""
        return len(self.categories) if self.kind == "categorical" else 1

    def slot_names(self) -> list[str]:
        if self.kind == "categorical":
            return [f"{self.name}={category}" for category in self.categories]
        return [self.name]


# The fields of the file that describe the artefacts rather than decide a prediction: the model
# version covers everything else (see ``FeatureSchema.model_version``).
_METADATA_FIELDS = ("model", "metrics")


def _digest(data: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace): the same content, the same hash."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class FeatureSchema:
    """Everything the service needs to know about the model's inputs and decision.

    Immutable: ``train`` builds it once, with the threshold it chose; ``export`` derives the
    shipped form with ``exported`` (model metadata, ONNX hash, version, metrics). A stage that
    holds a schema holds a whole one.
    """

    features: tuple[Feature, ...]
    threshold: float
    threshold_policy: dict[str, Any] = field(default_factory=dict)
    target: str = "y"
    group_column: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    onnx_input: str = "input"
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # Own copies, so the caller's list and dicts cannot change this schema afterwards.
        object.__setattr__(self, "features", tuple(self.features))
        for name in ("threshold_policy", "model", "metrics"):
            object.__setattr__(self, name, dict(getattr(self, name)))
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError(f"threshold must be a number, got {type(threshold).__name__}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")

    @property
    def n_inputs(self) -> int:
        return sum(feature.width for feature in self.features)

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def slot_names(self) -> list[str]:
        return [slot for feature in self.features for slot in feature.slot_names()]

    def _content(self) -> dict[str, Any]:
        data = asdict(self)
        data["n_inputs"] = self.n_inputs
        data["features"] = [
            {**asdict(feature), "categories": list(feature.categories)} for feature in self.features
        ]
        return data

    @property
    def checksum(self) -> str:
        """sha256 over the canonical JSON of the whole schema (what ``features.json`` holds)."""
        return _digest(self._content())

    def model_version(self, onnx_sha256: str, code_version: str) -> str:
        """``<code_version>+<12 hex digits>`` for this schema served with that ONNX file.

        The digits hash the ONNX bytes (through their sha256) together with every field that
        decides a prediction (features, threshold, policy, input name, ...), so a new model or a
        new threshold always gets a new version.
        """
        deciding = {k: v for k, v in self._content().items() if k not in _METADATA_FIELDS}
        digest = _digest({"onnx_sha256": onnx_sha256, "schema": deciding})
        return f"{code_version}+{digest[:12]}"

    def exported(
        self,
        onnx_sha256: str,
        code_version: str,
        model: Mapping[str, Any],
        metrics: Mapping[str, Any],
    ) -> FeatureSchema:
        """This schema as ``export`` ships it beside the ONNX file whose sha256 is given."""
        version = self.model_version(onnx_sha256, code_version)
        return replace(
            self,
            model={**model, "sha256": onnx_sha256, "version": version},
            metrics=dict(metrics),
        )

    def to_dict(self) -> dict[str, Any]:
        """The content of ``features.json``: every field, ``n_inputs`` and the checksum."""
        content = self._content()
        return {**content, "checksum": _digest(content)}

    @classmethod
    def from_dict(cls, data: Any) -> FeatureSchema:
        """Read what ``to_dict`` wrote, whole or not at all.

        Raises ``ValueError`` naming the problem: not a JSON object, another schema version, a
        missing, unknown or mistyped field (with its JSON path, e.g. ``$.threshold``), or a
        missing or wrong checksum (the file was edited, or not written to the end, after export).
        """
        try:
            version = msgspec.convert(data, _SchemaHead).schema_version
            if version != SCHEMA_VERSION:
                raise ValueError(
                    f"feature schema version {version!r} is not {SCHEMA_VERSION} "
                    "(written by another version of the code)"
                )
            parsed = msgspec.convert(data, _SchemaFile)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from None
        features = []
        for index, entry in enumerate(parsed.features):
            try:
                features.append(Feature(**msgspec.structs.asdict(entry)))
            except ValueError as exc:
                raise ValueError(f"{exc} - at `$.features[{index}]`") from None
        fields = {
            name: getattr(parsed, name)
            for name in cls.__dataclass_fields__
            if name not in {"features", "threshold"}
        }
        try:
            schema = cls(features=tuple(features), threshold=parsed.threshold, **fields)
        except ValueError as exc:
            raise ValueError(f"{exc} - at `$.threshold`") from None
        if parsed.n_inputs != schema.n_inputs:
            raise ValueError(
                f"feature schema says n_inputs={parsed.n_inputs} "
                f"but its features add up to {schema.n_inputs}"
            )
        if parsed.checksum is None:
            raise ValueError("it has no checksum, so it was not written by `export`")
        if parsed.checksum != _digest({k: v for k, v in data.items() if k != "checksum"}):
            raise ValueError(
                "its checksum does not match its content: it was edited, or not written to "
                "the end, after `export` wrote it"
            )
        return schema

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FeatureSchema:
        try:
            data = msgspec.json.decode(Path(path).read_bytes())
        except msgspec.DecodeError as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
        return cls.from_dict(data)


# How ``features.json`` is decoded: msgspec checks every field's presence and type and names the
# path of the first one that is wrong. Every field is required except the checksum, whose absence
# gets its own message.
class _SchemaHead(msgspec.Struct):
    schema_version: Any = None


class _FeatureEntry(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    kind: str
    nullable: bool
    categories: tuple[str, ...]
    description: str


class _SchemaFile(msgspec.Struct, forbid_unknown_fields=True):
    schema_version: int
    features: list[_FeatureEntry]
    threshold: float
    threshold_policy: dict[str, Any]
    target: str
    group_column: str | None
    model: dict[str, Any]
    metrics: dict[str, Any]
    onnx_input: str
    n_inputs: int
    checksum: str | None = None


# ---------------------------------------------------------------------------------------------
# Encoding: raw values (JSON scalars or raw CSV strings) → float32 slots.
# One converter per feature kind is used by both the per-record path (serving) and the
# per-column path (training), so the two can never drift apart.
# ---------------------------------------------------------------------------------------------

Converter = Callable[[Any], float]


def _is_missing(value: Any) -> bool:
    if isinstance(value, str):
        return is_blank(value)
    return value is None or (isinstance(value, float) and math.isnan(value))


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number (NaN and Infinity are not accepted)")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return _finite(float(value))


def _text_or_number(parse: Callable[[str], float]) -> Converter:
    def convert(value: Any) -> float:
        if isinstance(value, str):
            return _finite(parse(value))
        return _number(value)

    return convert


def _numeric(value: Any) -> float:
    # Raw CSV data arrives as text; JSON as numbers. Both are accepted, nothing else.
    if isinstance(value, str):
        return _finite(parse_number(value))
    return _number(value)


CONVERTERS: dict[str, Converter] = {
    "numeric": _numeric,
    "money": _text_or_number(parse_money),
    "percent": _text_or_number(parse_percent),
}
# The whole-column text parsers of the kinds that take strings (see ``parse_money_column``):
# of a list of texts, and of texts joined by newlines.
COLUMN_PARSERS: dict[str, Callable[[Sequence[str]], np.ndarray]] = {
    "money": parse_money_column,
    "percent": parse_percent_column,
}
LINE_PARSERS: dict[str, Callable[[str], np.ndarray]] = {
    "money": parse_money_lines,
    "percent": parse_percent_lines,
}


def slot_offsets(features: Sequence[Feature]) -> dict[str, int]:
    """Where each feature starts in the model's input tensor: the features in order, each
    ``width`` slots wide (a categorical one slot per category, one-hot). The one definition of
    the layout, for the training encoder below and the service's decoders."""
    offsets, offset = {}, 0
    for feature in features:
        offsets[feature.name] = offset
        offset += feature.width
    return offsets


class Encoder:
    """Turns records into the model's float32 input tensor, following a ``FeatureSchema``.

    Only the features matter, so a bare feature list will do: ``train`` encodes its data before
    it has chosen the threshold that completes the schema.
    """

    def __init__(self, schema: FeatureSchema | Sequence[Feature]):
        features = schema.features if isinstance(schema, FeatureSchema) else tuple(schema)
        self.features = features
        self.n_inputs = sum(feature.width for feature in features)
        self._plan: list[tuple[Feature, int, Converter | dict[str, int]]] = []
        offsets = slot_offsets(features)
        for feature in features:
            if feature.kind == "categorical":
                lookup = {category: i for i, category in enumerate(feature.categories)}
                self._plan.append((feature, offsets[feature.name], lookup))
            else:
                self._plan.append((feature, offsets[feature.name], CONVERTERS[feature.kind]))

    def _write(self, out: np.ndarray, feature: Feature, offset: int, how: Any, value: Any) -> None:
        """Write one value into ``out`` (a row, already zero-filled)."""
        if _is_missing(value):
            if not feature.nullable:
                raise ValueError("is required")
            if feature.kind != "categorical":
                out[offset] = np.nan  # imputed inside the exported model
            return
        if isinstance(how, dict):
            if not isinstance(value, str):
                raise ValueError(
                    f"expected one of {list(feature.categories)}, got {type(value).__name__}"
                )
            index = how.get(value)
            if index is None:
                raise ValueError(f"{value!r} is not one of {list(feature.categories)}")
            out[offset + index] = 1.0
        else:
            out[offset] = how(value)

    @staticmethod
    def _write_float_column(
        out: np.ndarray, feature: Feature, offset: int, values: np.ndarray
    ) -> None:
        """``_write`` for a whole float column at once (same rules, first bad row reported)."""
        if values.shape != (out.shape[0],):
            expected = (out.shape[0],)
            raise FieldError(feature.name, f"has shape {values.shape}, expected {expected}")
        missing = np.isnan(values)
        if not feature.nullable and missing.any():
            raise FieldError(feature.name, "is required", int(np.flatnonzero(missing)[0]))
        infinite = np.isinf(values)
        if infinite.any():
            raise FieldError(
                feature.name,
                "must be a finite number (NaN and Infinity are not accepted)",
                int(np.flatnonzero(infinite)[0]),
            )
        out[:, offset] = values

    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode JSON-like records; unknown keys are the caller's to reject."""
        out = np.zeros((len(records), self.n_inputs), dtype=np.float32)
        for row, record in enumerate(records):
            target = out[row]
            for feature, offset, how in self._plan:
                try:
                    self._write(target, feature, offset, how, record.get(feature.name))
                except ValueError as exc:
                    raise FieldError(feature.name, str(exc), row) from None
        return out

    def encode_columns(self, columns: Mapping[str, Iterable[Any]], n_rows: int) -> np.ndarray:
        """Encode column-wise data (e.g. ``{name: frame[name].tolist()}`` from training).

        A float NumPy array for a non-categorical feature takes a vectorised path with the same
        rules as ``_write`` (NaN is missing, infinities are refused): training encodes tens of
        thousands of rows this way in milliseconds instead of seconds.
        """
        out = np.zeros((n_rows, self.n_inputs), dtype=np.float32)
        for feature, offset, how in self._plan:
            if feature.name not in columns:
                raise FieldError(feature.name, "column is missing")
            values = columns[feature.name]
            if (
                feature.kind != "categorical"
                and isinstance(values, np.ndarray)
                and values.dtype.kind == "f"
            ):
                self._write_float_column(out, feature, offset, values)
                continue
            for row, value in enumerate(values):
                try:
                    self._write(out[row], feature, offset, how, value)
                except ValueError as exc:
                    raise FieldError(feature.name, str(exc), row) from None
        return out
