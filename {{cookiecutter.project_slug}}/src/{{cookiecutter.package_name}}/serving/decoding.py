"""Request bytes → validated float32 tensor, generated from the feature schema.

The request types are msgspec Structs built at start-up from ``features.json``: one field per
feature, typed by its kind (numbers, money/percent strings or numbers, categorical literals),
unknown fields forbidden. msgspec validates while it parses, so the hot path never builds a dict
per record and never touches pandas. Measured against ``json.loads`` + ``Encoder.encode_records``
in ``bench.py --decoders`` (see docs/serving.md for the figures).

Values are converted exactly as ``features.Encoder`` converts them (same money/percent parsers,
same one-hot layout, NaN for a missing number); ``tests/unit/test_decoding.py`` checks the two
agree on random records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import chain
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from ..features import CONVERTERS, FeatureSchema

BATCH_KEY = "records"
_PATH_RE = re.compile(r"^\$(?:\.records\[(?P<row>\d+)\])?(?:\.(?P<field>.+))?$")
_NAMED_RE = re.compile(r"field `(?P<field>[^`]+)`")


@dataclass
class FieldError:
    field: str | None
    message: str
    row: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.row is not None:
            out["row"] = self.row
        return out


_MINUS_ONE = [-1]
_NAN = float("nan")


def _missing_or(parse: Any, value: Any) -> float:
    """Money/percent value: NaN when missing ("" too, as in training), else parsed."""
    if value is None or value == "":
        return _NAN
    return parse(value)


class MalformedBody(ValueError):
    """The body is not JSON at all (→ 400)."""


@dataclass
class InvalidInput(ValueError):
    """The body is JSON but does not match the schema (→ 422); names the field(s) and row."""

    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{e.field} (row {e.row}): {e.message}" for e in self.errors)


def _describe(feature_kind: str, categories: tuple[str, ...]) -> str:
    if feature_kind == "categorical":
        return "one of " + ", ".join(repr(c) for c in categories)
    if feature_kind == "numeric":
        return "a number"
    return f"a number or a {feature_kind} string"


class RequestDecoder:
    """Decodes ``{...one record...}`` or ``{"records": [...]}`` into the model's input tensor."""

    def __init__(self, schema: FeatureSchema, max_rows: int):
        if BATCH_KEY in schema.names:
            raise ValueError(f"a feature may not be called {BATCH_KEY!r}: it is the batch key")
        self.schema = schema
        self.max_rows = max_rows
        self.n_inputs = schema.n_inputs
        self.kinds = {f.name: f for f in schema.features}

        # Tensor slot of each feature, in schema order.
        offsets, offset = {}, 0
        for feature in schema.features:
            offsets[feature.name] = offset
            offset += feature.width

        # Struct fields: plain numbers first (converted in one NumPy call), the rest after.
        numeric = [f for f in schema.features if f.kind == "numeric"]
        special = [f for f in schema.features if f.kind != "numeric"]
        ordered = numeric + special
        self._n_numeric = len(numeric)
        self._numeric_slots = np.array([offsets[f.name] for f in numeric], dtype=np.intp)
        self._numeric_names = [f.name for f in numeric]
        # (tuple index, name, kind, slot, converter or category → index lookup)
        self._special: list[tuple[int, str, str, int, Any]] = []
        for i, f in enumerate(special, start=len(numeric)):
            how = (
                {c: j for j, c in enumerate(f.categories)}
                if f.kind == "categorical"
                else CONVERTERS[f.kind]
            )
            self._special.append((i, f.name, f.kind, offsets[f.name], how))
        self._slot_feature = [f.name for f in schema.features for _ in range(f.width)]

        struct_fields = []
        rename = {}
        for i, f in enumerate(ordered):
            if f.kind == "numeric":
                typ: Any = float
            elif f.kind == "categorical":
                typ = Literal[f.categories]  # type: ignore[valid-type]
            else:
                typ = float | str
            attr = f"f{i}"
            rename[attr] = f.name
            if f.nullable:
                struct_fields.append((attr, typ | None, None))
            else:
                struct_fields.append((attr, typ))
        self.Record = msgspec.defstruct(
            "Record",
            struct_fields,
            kw_only=True,
            forbid_unknown_fields=True,
            rename=rename,
            gc=False,  # records hold only scalars: no reference cycles, cheaper allocation
        )
        records_type = Annotated[list[self.Record], msgspec.Meta(min_length=1, max_length=max_rows)]  # type: ignore[name-defined]
        self.Batch = msgspec.defstruct(
            "Batch", [(BATCH_KEY, records_type)], forbid_unknown_fields=True
        )
        self._single = msgspec.json.Decoder(self.Record)
        self._batch = msgspec.json.Decoder(self.Batch)
        self._astuple = msgspec.structs.astuple

    # -- public API ------------------------------------------------------------------------
    def decode(self, body: bytes) -> tuple[np.ndarray, bool]:
        """Return ``(tensor [n, n_inputs] float32, is_batch)``; raise MalformedBody/InvalidInput."""
        if b'"' + BATCH_KEY.encode() + b'"' in body:
            try:
                records = self._batch.decode(body).records
                return self._to_tensor([self._astuple(r) for r in records]), True
            except msgspec.ValidationError as exc:
                error = self._field_error(str(exc))
                # A single record may mention "records" as a value: only then retry it as one.
                if not (
                    error.row is None
                    and error.field != BATCH_KEY
                    and "unknown field" in error.message
                ):
                    raise InvalidInput([error]) from None
            except msgspec.DecodeError:
                raise MalformedBody("the body is not valid JSON") from None
        try:
            record = self._single.decode(body)
        except msgspec.ValidationError as exc:
            raise InvalidInput([self._field_error(str(exc))]) from None
        except msgspec.DecodeError:
            raise MalformedBody("the body is not valid JSON") from None
        return self._to_tensor([self._astuple(record)]), False

    def json_schema(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(request body schema, components) for the OpenAPI document."""
        _, components = msgspec.json.schema_components(
            [self.Record, self.Batch], ref_template="#/components/schemas/{name}"
        )
        for name, feature in self.kinds.items():
            prop = components["Record"]["properties"][name]
            prop["description"] = feature.description or _describe(feature.kind, feature.categories)
        components["PredictionRecord"] = components.pop("Record")
        components["PredictionBatch"] = components.pop("Batch")
        text = (
            msgspec.json.encode(components)
            .decode()
            .replace("#/components/schemas/Record", "#/components/schemas/PredictionRecord")
        )
        components = msgspec.json.decode(text)
        body = {
            "oneOf": [
                {"$ref": "#/components/schemas/PredictionRecord"},
                {"$ref": "#/components/schemas/PredictionBatch"},
            ]
        }
        return body, components

    # -- internals -------------------------------------------------------------------------
    def _to_tensor(self, rows: list[tuple[Any, ...]]) -> np.ndarray:
        if len(rows) == 1:
            return self._one_row(rows[0])
        n = len(rows)
        out = np.zeros((n, self.n_inputs), dtype=np.float32)
        k = self._n_numeric
        width = len(rows[0])
        # One C pass over every value; the columns are views of this table from here on.
        table = np.fromiter(chain.from_iterable(rows), dtype=object, count=n * width)
        table = table.reshape(n, width)
        with np.errstate(over="ignore", invalid="ignore"):
            if k:
                # None → NaN (imputed inside the model); ints and floats are already validated.
                out[:, self._numeric_slots] = table[:, :k].astype(np.float64)
            for index, name, kind, slot, how in self._special:
                column = table[:, index]
                if kind == "categorical":
                    hot = np.fromiter(map(how.get, column, _MINUS_ONE * n), dtype=np.intp, count=n)
                    (rows_set,) = np.nonzero(hot >= 0)
                    out[rows_set, slot + hot[rows_set]] = 1.0  # msgspec checked the literal
                    continue
                try:
                    # Each distinct value is parsed once (percentages repeat a lot).
                    parsed = {v: _missing_or(how, v) for v in dict.fromkeys(column)}
                    out[:, slot] = [parsed[v] for v in column]
                except ValueError:
                    for row, v in enumerate(column):
                        try:
                            _missing_or(how, v)
                        except ValueError as exc:
                            raise InvalidInput([FieldError(name, str(exc), row)]) from None
                    raise  # pragma: no cover - the loop above always finds the culprit
        self._check_range(out)
        return out

    def _one_row(self, record: tuple[Any, ...]) -> np.ndarray:
        """The single-record path: plain Python per special field, no per-column NumPy calls."""
        values = np.array(record[: self._n_numeric], dtype=np.float64)  # None → NaN
        out = np.zeros((1, self.n_inputs), dtype=np.float32)
        row = out[0]
        with np.errstate(over="ignore", invalid="ignore"):
            row[self._numeric_slots] = values
            for index, name, kind, slot, how in self._special:
                value = record[index]
                if kind == "categorical":
                    if value is not None:
                        row[slot + how[value]] = 1.0
                    continue
                try:
                    row[slot] = _missing_or(how, value)
                except ValueError as exc:
                    raise InvalidInput([FieldError(name, str(exc), 0)]) from None
        self._check_range(out)
        return out

    def _check_range(self, out: np.ndarray) -> None:
        """Numbers beyond float32 became ±inf in the cast: name the first one."""
        if np.isinf(out).any():
            row, col = (int(v) for v in np.argwhere(np.isinf(out))[0])
            name = self._slot_feature[col]
            raise InvalidInput([FieldError(name, "number is out of the float32 range", row)])

    def _field_error(self, text: str) -> FieldError:
        message, _, path = text.partition(" - at `")
        path = path.rstrip("`") or "$"
        match = _PATH_RE.match(path)
        row = field_name = None
        if match:
            row = int(match["row"]) if match["row"] is not None else None
            field_name = match["field"]
        named = _NAMED_RE.search(message)
        if named and ("unknown field" in message or "missing required field" in message):
            field_name = named["field"]
            message = message.replace(f"`{field_name}`", repr(field_name))
        if field_name in self.kinds:
            feature = self.kinds[field_name]
            if message.startswith(("Expected", "Invalid enum")):
                message = (
                    f"expected {_describe(feature.kind, feature.categories)}"
                    + (" or null" if feature.nullable else "")
                    + f" ({message})"
                )
        if field_name is None and path == "$":
            field_name = None
        if path.startswith("$.records") and field_name is None and row is None:
            field_name = BATCH_KEY
            if "length" in message:
                message = f"{BATCH_KEY} must hold between 1 and {self.max_rows} rows ({message})"
        return FieldError(field_name, message.replace("`", "'"), row)
