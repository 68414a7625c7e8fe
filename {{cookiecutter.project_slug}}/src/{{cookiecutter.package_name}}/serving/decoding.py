"""Request bytes → validated float32 tensor, generated from the feature schema.

The request types are msgspec Structs built at start-up from ``features.json``: one field per
feature, typed by its kind (numbers, money/percent strings or numbers, categorical literals),
unknown fields forbidden. msgspec validates while it parses, so the hot path never builds a dict
per record and never touches pandas. Measured against ``json.loads`` + ``Encoder.encode_records``
in ``bench.py --decoders`` (see docs/serving.md for the figures).

Three body forms, told apart by the object's first key:

* one record ``{"x0": 1.2, ...}``;
* a batch of records ``{"records": [{...}, ...]}``;
* a columnar batch ``{"columns": {"x0": [1.2, null, ...], "x12": ["$1,234.56", ...], ...}}``:
  one JSON array per feature, all of one length, typed per kind exactly as a record's field
  (a nullable feature's column may be left out: all missing). It carries the same data without
  repeating every key in every row and decodes into one list per column, which NumPy converts
  in one call, so a 10,000-row batch costs about half as much as the same rows as records
  (``bench --decoders``; figures in docs/serving.md).

Large batches go faster still as binary tensors through the Open Inference Protocol
(``open_inference.py``), which ends in this module's ``columns_tensor``: same checks, same values.

Values are converted exactly as ``features.Encoder`` converts them (same money/percent parsers,
same one-hot layout, NaN for a missing number); ``tests/unit/test_serving_units.py`` checks the
three forms and the encoder agree on random records.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from ..features import (
    COLUMN_PARSERS,
    CONVERTERS,
    LINE_PARSERS,
    MAX_TEXT_CHARS,
    Feature,
    FeatureSchema,
    FieldError,
    is_blank,
    preview,
    slot_offsets,
)

BATCH_KEY = "records"
COLUMNS_KEY = "columns"
RECORD, RECORDS, COLUMNS = "record", "records", "columns"  # the three body forms
TENSORS = "tensors"  # the Open Inference Protocol's inputs (open_inference.py)
# The first key of the body's object picks the form (JSON whitespace may come first).
_FIRST_KEY_RE = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"(records|columns)"[ \t\r\n]*:')
_PATH_RE = re.compile(r"^\$(?:\.records\[(?P<row>\d+)\])?(?:\.(?P<field>.+))?$")
_COLUMN_PATH_RE = re.compile(r"^\$\.columns(?:\.(?P<field>.+?)(?:\[(?P<row>\d+)\])?)?$")
_NAMED_RE = re.compile(r"field `(?P<field>[^`]+)`")


_NAN = float("nan")


def _picker(positions: list[int]) -> Any:
    """``itemgetter`` that always returns a tuple (it returns a bare item for one position)."""
    return lambda record: tuple(record[i] for i in positions)


INFINITE_MESSAGE = (
    "number is infinite or out of the float32 range (±3.4e38): give a finite number, or a "
    "missing value"
)
REQUIRED_MESSAGE = (
    "a value is required: this feature is not nullable (a blank string and NaN are missing)"
)
# The model's input is float32: a JSON number beyond its range is refused while parsing (and
# the OpenAPI document says so), instead of becoming an infinity.
_F32_MAX = float(np.finfo(np.float32).max)
FLOAT32 = Annotated[float, msgspec.Meta(ge=-_F32_MAX, le=_F32_MAX)]


def _missing_or(parse: Any, value: Any) -> float:
    """Money/percent value: NaN when missing (a blank string too, as in training), else parsed."""
    if value is None or (value.__class__ is str and is_blank(value)):
        return _NAN
    return parse(value)


class Lines(Sequence[str]):
    """Texts joined by newlines, none holding one itself: a binary BYTES tensor's elements as
    one string (open_inference.py), which the money/percent parsers read whole. Split into
    values only when one is looked at: an error's row, the prediction log's samples."""

    __slots__ = ("_count", "_values", "text")

    def __init__(self, text: str, count: int):
        self.text, self._count = text, count
        self._values: list[str] | None = None

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, row: Any) -> Any:
        if self._values is None:
            self._values = self.text.split("\n")
        return self._values[row]


def _floats(column: list[float | None]) -> np.ndarray:
    """A decoded numeric column as float64, None → NaN (fromiter is ~30 % faster without None)."""
    try:
        return np.fromiter(column, dtype=np.float64, count=len(column))
    except TypeError:  # a None (missing value) in the column
        return np.array(column, dtype=np.float64)


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


def _expected(feature: Feature) -> str:
    """What a value of ``feature`` may be, for an error message."""
    return _describe(feature.kind, feature.categories) + (" or null" if feature.nullable else "")


def split_validation_error(text: str) -> tuple[str, str]:
    """A msgspec validation error → ``(message, JSON path)``, the path ``$`` at the top level."""
    message, _, path = text.partition(" - at `")
    if repr(_F32_MAX) in message:  # the FLOAT32 bounds
        message = f"number is out of the float32 range ({message})"
    return message, path.rstrip("`") or "$"


def _named_field(message: str) -> tuple[str | None, str]:
    """An unknown or missing field is named in the message, not the path: ``(name, message)``
    with the name quoted the Python way, or ``(None, message)`` for any other error."""
    named = _NAMED_RE.search(message)
    if named and ("unknown field" in message or "missing required field" in message):
        name = named["field"]
        return name, message.replace(f"`{name}`", repr(name))
    return None, message


@dataclass
class Decoded:
    """A decoded body: the model's input tensor, and the rows as the client sent them (for the
    sampled prediction log), read from the parsed body instead of parsing it twice."""

    tensor: np.ndarray
    form: str  # RECORD, RECORDS, COLUMNS or TENSORS
    parsed: Any
    names: list[str]  # feature name of each struct field / column, in that order
    categories: list[tuple[str, ...]]  # each name's categories (empty: not categorical)
    columns: list[Any] | None = None  # COLUMNS, TENSORS: one column per name (None: left out)

    @property
    def is_batch(self) -> bool:
        return self.form != RECORD

    def record(self, row: int) -> dict[str, Any]:
        """Row ``row`` as ``{feature: value}`` (None where missing)."""
        if self.form in (COLUMNS, TENSORS):
            if self.columns is None:
                self.columns = list(msgspec.structs.astuple(self.parsed.columns))
            return {
                name: _cell(column, row, labels)
                for name, column, labels in zip(
                    self.names, self.columns, self.categories, strict=True
                )
            }
        struct = self.parsed.records[row] if self.form == RECORDS else self.parsed
        return dict(zip(self.names, msgspec.structs.astuple(struct), strict=True))


def _cell(column: Any, row: int, categories: tuple[str, ...]) -> Any:
    if column is None:
        return None
    if column.__class__ is np.ndarray:
        if column.dtype.kind == "i":  # category codes, -1 = missing
            code = int(column[row])
            return categories[code] if code >= 0 else None
        value = float(column[row])
        return None if value != value else value  # NaN is missing
    value = column[row]
    return None if categories and value == "" else value  # a tensor's missing category


class RequestDecoder:
    """Decodes a record, ``{"records": [...]}`` or ``{"columns": {...}}`` into the input tensor."""

    def __init__(self, schema: FeatureSchema, max_rows: int):
        for key in (BATCH_KEY, COLUMNS_KEY):
            if key in schema.names:
                raise ValueError(f"a feature may not be called {key!r}: it is a batch key")
        self.schema = schema
        self.max_rows = max_rows
        self.n_inputs = schema.n_inputs
        self.kinds = {f.name: f for f in schema.features}

        offsets = slot_offsets(schema.features)  # the encoder's layout, from one definition

        # Struct fields in the schema's order, the order clients send them: msgspec matches each
        # key against the next expected field first (measured ~20 % faster than numbers first).
        ordered = list(schema.features)
        positions = [i for i, f in enumerate(ordered) if f.kind == "numeric"]
        self._numeric_positions = np.array(positions, dtype=np.intp)
        self._numeric_slots = np.array([offsets[ordered[i].name] for i in positions], np.intp)
        # (tuple index, name, kind, slot, converter or category → index lookup)
        self._special: list[tuple[int, str, str, int, Any]] = []
        for i, f in enumerate(ordered):
            if f.kind == "numeric":
                continue
            how = (
                {c: j for j, c in enumerate(f.categories)}
                if f.kind == "categorical"
                else CONVERTERS[f.kind]
            )
            self._special.append((i, f.name, f.kind, offsets[f.name], how))
        self._gather, self._one_hot = self._single_row_plan(ordered, offsets)
        self._slot_feature = [f.name for f in schema.features for _ in range(f.width)]
        # Number slots that may not be missing: msgspec refuses their null, but a blank money or
        # percent string and a NaN tensor value are missing too, refused once the tensor is built.
        self._required_names = frozenset(f.name for f in schema.features if not f.nullable)
        self._required_slots = np.array(
            [
                offsets[f.name]
                for f in schema.features
                if not f.nullable and f.kind != "categorical"
            ],
            dtype=np.intp,
        )

        struct_fields = []
        column_fields = []
        rename = {}
        rows = msgspec.Meta(min_length=1, max_length=max_rows)
        for i, f in enumerate(ordered):
            if f.kind == "numeric":
                typ: Any = FLOAT32
            elif f.kind == "categorical":
                typ = Literal[f.categories]  # type: ignore[valid-type]
            else:
                # Capped before any parser sees it: msgspec refuses a longer string in C.
                typ = FLOAT32 | Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]
            attr = f"f{i}"
            rename[attr] = f.name
            value = typ | None if f.nullable else typ
            column: Any = Annotated[list[value], rows]  # type: ignore[valid-type]
            if f.nullable:
                struct_fields.append((attr, value, None))
                # A left-out nullable column is all missing; an explicit null is no column.
                column_fields.append((attr, column, None))
            else:
                struct_fields.append((attr, value))
                column_fields.append((attr, column))
        self.Record = msgspec.defstruct(
            "PredictionRecord",
            struct_fields,
            kw_only=True,
            forbid_unknown_fields=True,
            rename=rename,
            gc=False,  # records hold only scalars: no reference cycles, cheaper allocation
        )
        records_type = Annotated[list[self.Record], msgspec.Meta(min_length=1, max_length=max_rows)]  # type: ignore[name-defined]
        self.Batch = msgspec.defstruct(
            "PredictionBatch", [(BATCH_KEY, records_type)], forbid_unknown_fields=True
        )
        self.Columns = msgspec.defstruct(
            "PredictionColumns",
            column_fields,
            kw_only=True,
            forbid_unknown_fields=True,
            rename=rename,
            gc=False,  # lists of scalars only: no reference cycles
        )
        self.ColumnBatch = msgspec.defstruct(
            "PredictionColumnBatch", [(COLUMNS_KEY, self.Columns)], forbid_unknown_fields=True
        )
        self._single = msgspec.json.Decoder(self.Record)
        self._batch = msgspec.json.Decoder(self.Batch)
        self._columns = msgspec.json.Decoder(self.ColumnBatch)
        self._astuple = msgspec.structs.astuple
        self.names = [f.name for f in ordered]  # struct field order: the columns' order
        self.categories = [f.categories for f in ordered]

    # -- public API ------------------------------------------------------------------------
    def decode_body(self, body: bytes) -> Decoded:
        """The body's tensor and rows; raises MalformedBody / InvalidInput."""
        form, parsed = self.parse(body)
        tensor, _ = self.to_tensor(form, parsed)
        return Decoded(tensor, form, parsed, self.names, self.categories)

    def decode(self, body: bytes) -> tuple[np.ndarray, bool]:
        """Return ``(tensor [n, n_inputs] float32, is_batch)``; raise MalformedBody/InvalidInput."""
        decoded = self.decode_body(body)
        return decoded.tensor, decoded.is_batch

    def parse(self, body: bytes) -> tuple[str, Any]:
        """Step 1: JSON bytes → validated msgspec object of the body's form (no NumPy yet)."""
        first = _FIRST_KEY_RE.match(body)
        form = RECORD if first is None else first[1].decode()
        decoder = {RECORD: self._single, RECORDS: self._batch, COLUMNS: self._columns}[form]
        try:
            return form, decoder.decode(body)
        except msgspec.ValidationError as exc:
            text = str(exc)
            error = self._column_error(text) if form == COLUMNS else self._field_error(text)
            raise InvalidInput([error]) from None
        except msgspec.DecodeError:
            raise MalformedBody("the body is not valid JSON") from None

    def to_tensor(self, form: str, parsed: Any) -> tuple[np.ndarray, str]:
        """Step 2: the parsed body → ``(tensor, form)``; raises InvalidInput."""
        if form == COLUMNS:
            return self._columns_to_tensor(parsed.columns), form
        if form == RECORDS:
            return self._to_tensor([self._astuple(r) for r in parsed.records]), form
        return self.one_row(self._astuple(parsed)), form

    def json_schema(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(request body schema, components) for the OpenAPI document, from the same Structs
        that decode the body."""
        _, components = msgspec.json.schema_components(
            [self.Record, self.Batch, self.ColumnBatch], ref_template="#/components/schemas/{name}"
        )
        for name, feature in self.kinds.items():
            prop = components["PredictionRecord"]["properties"][name]
            prop["description"] = feature.description or _describe(feature.kind, feature.categories)
            column = components["PredictionColumns"]["properties"][name]
            column["description"] = (
                f"column of {feature.name!r}: each value "
                + (feature.description or _describe(feature.kind, feature.categories))
                + (" or null" if feature.nullable else "")
                + ("; leave the column out when all are missing" if feature.nullable else "")
            )
        components["PredictionColumns"]["description"] = (
            "one array per feature, all of the same length (one value per row)"
        )
        body = {
            "oneOf": [
                {"$ref": f"#/components/schemas/{struct.__name__}"}
                for struct in (self.Record, self.Batch, self.ColumnBatch)
            ]
        }
        return body, components

    # -- internals -------------------------------------------------------------------------
    def _to_tensor(self, rows: list[tuple[Any, ...]]) -> np.ndarray:
        if len(rows) == 1:
            return self.one_row(rows[0])
        n = len(rows)
        out = np.zeros((n, self.n_inputs), dtype=np.float32)
        width = len(rows[0])
        # One C pass over every value; the columns are views of this table from here on.
        table = np.fromiter(chain.from_iterable(rows), dtype=object, count=n * width)
        table = table.reshape(n, width)
        with np.errstate(over="ignore", invalid="ignore"):
            if len(self._numeric_positions):
                # None → NaN (imputed inside the model); ints and floats are already validated.
                numbers = table[:, self._numeric_positions].astype(np.float64)
                out[:, self._numeric_slots] = numbers
            for index, name, kind, slot, how in self._special:
                self._fill_special(out, table[:, index].tolist(), name, kind, slot, how)
        self._check_values(out)
        return out

    def _columns_to_tensor(self, columns: Any) -> np.ndarray:
        return self.columns_tensor(self._astuple(columns))

    def columns_tensor(self, values: Sequence[Any]) -> np.ndarray:
        """The tensor of one column per feature, in ``names`` order: a list of values (as JSON
        decodes them), a float array (NaN = missing), category codes (-1 = missing) or None
        (left out: all missing). Also the Open Inference Protocol's decoder's last step."""
        given = zip(self.names, values, strict=True)
        lengths = {name: len(column) for name, column in given if column is not None}
        if not lengths:
            raise InvalidInput(
                [FieldError(COLUMNS_KEY, "no columns: give at least one feature's column")]
            )
        counts = Counter(lengths.values())
        if len(counts) > 1:
            # The most common length (the first column's on a tie) is taken as the batch's.
            first = next(iter(lengths.values()))
            n = max(counts, key=lambda m: (counts[m], m == first))
            raise InvalidInput(
                [
                    FieldError(
                        name,
                        f"column has {length} values but {counts[n]} other column(s) have {n}: "
                        "every column needs one value per row",
                    )
                    for name, length in lengths.items()
                    if length != n
                ]
            )
        (n,) = counts
        out = np.zeros((n, self.n_inputs), dtype=np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            numeric_columns = zip(
                self._numeric_slots.tolist(), self._numeric_positions.tolist(), strict=True
            )
            for slot, position in numeric_columns:
                column = values[position]
                # None → NaN (imputed inside the model); a left-out column is all missing.
                if column is None:
                    out[:, slot] = _NAN
                elif column.__class__ is np.ndarray:
                    out[:, slot] = column
                else:
                    out[:, slot] = _floats(column)
            for index, name, kind, slot, how in self._special:
                column = values[index]
                if column is None:
                    if kind != "categorical":
                        out[:, slot] = _NAN
                    continue
                if column.__class__ is np.ndarray:
                    if kind == "categorical":  # category codes, -1 = missing (tensors)
                        (rows,) = np.nonzero(column >= 0)
                        out[rows, slot + column[rows]] = 1.0
                    else:  # money/percent amounts as numbers
                        out[:, slot] = column
                    continue
                self._fill_special(out, column, name, kind, slot, how)
        self._check_values(out)
        return out

    @staticmethod
    def _fill_special(
        out: np.ndarray, column: Sequence[Any], name: str, kind: str, slot: int, how: Any
    ) -> None:
        """Fill one categorical or money/percent column of ``out`` (already zero-filled)."""
        n = len(column)
        if kind == "categorical":
            hot = np.fromiter(map(how.get, column, repeat(-1, n)), dtype=np.intp, count=n)
            (rows_set,) = np.nonzero(hot >= 0)
            if len(rows_set) < n:  # msgspec checks a JSON body; tensors come unchecked
                for row, value in enumerate(column):
                    if value is not None and value != "" and value not in how:  # "": missing
                        message = f"{preview(str(value))} is not one of {list(how)}"
                        raise InvalidInput([FieldError(name, message, row)])
            out[rows_set, slot + hot[rows_set]] = 1.0
            return
        # The usual column: strings, None where missing. The column parser reads them in one
        # pass ("" is missing, as in training); a number among them (the join in the parser
        # raises TypeError) sends the column through the per-value converter instead.
        try:
            try:
                if column.__class__ is Lines:
                    values = LINE_PARSERS[kind](column.text)
                elif None in column:
                    values = COLUMN_PARSERS[kind](["" if v is None else v for v in column])
                else:
                    values = COLUMN_PARSERS[kind](column)
            except TypeError:
                values = [_missing_or(how, value) for value in column]
        except ValueError:
            for row, value in enumerate(column):
                try:
                    _missing_or(how, value)
                except ValueError as exc:
                    raise InvalidInput([FieldError(name, str(exc), row)]) from None
            raise  # pragma: no cover - the loop above always finds the culprit
        out[:, slot] = values

    def _single_row_plan(
        self, ordered: list[Feature], offsets: dict[str, int]
    ) -> tuple[Any, dict[int, dict[str | None, tuple[float, ...]]]]:
        """How ``one_row`` lays a record out: ``(gather, one_hot)``.

        A record tuple is extended by the values of its special fields (a money/percent number,
        a categorical's whole one-hot run), and ``gather`` picks every tensor slot from that
        extended tuple in one C call; ``one_hot[i][category]`` is feature ``i``'s run (None:
        all zeros)."""
        sources = [0] * self.n_inputs
        extra = len(ordered)  # the extended tuple's first special value
        one_hot: dict[int, dict[str | None, tuple[float, ...]]] = {}
        for i, f in enumerate(ordered):
            slot = offsets[f.name]
            if f.kind == "numeric":
                sources[slot] = i
                continue
            for k in range(f.width):
                sources[slot + k] = extra + k
            extra += f.width
            if f.kind == "categorical":
                zeros = (0.0,) * f.width
                runs: dict[str | None, tuple[float, ...]] = {None: zeros}
                for j, category in enumerate(f.categories):
                    runs[category] = (*zeros[:j], 1.0, *zeros[j + 1 :])
                one_hot[i] = runs
        gather = operator.itemgetter(*sources) if len(sources) > 1 else _picker(sources)
        return gather, one_hot

    def one_row(self, record: tuple[Any, ...]) -> np.ndarray:
        """The single-record path: one C call gathers the tensor row from the record (its values
        in ``names`` order) and its special values (no per-column NumPy calls, no fancy
        indexing: measured ~2x faster), and only the checks msgspec has not made (its FLOAT32
        bounds and non-null types cover the numbers and categories; a money or percent string
        can still be huge or blank). Also the Open Inference Protocol's one-row path."""
        specials: list[float] = []
        for index, name, kind, _slot, how in self._special:
            value = record[index]
            if kind == "categorical":
                specials += self._one_hot[index][value]
                continue
            try:
                number = _missing_or(how, value)
            except ValueError as exc:
                raise InvalidInput([FieldError(name, str(exc), 0)]) from None
            if number != number and name in self._required_names:  # NaN: missing
                raise InvalidInput([FieldError(name, REQUIRED_MESSAGE, 0)])
            if not -_F32_MAX <= number <= _F32_MAX and number == number:
                raise InvalidInput([FieldError(name, "number is out of the float32 range", 0)])
            specials.append(number)
        # None → NaN in the cast (imputed inside the model); msgspec kept numbers in range.
        values = self._gather(record + tuple(specials) if specials else record)
        return np.array(values, dtype=np.float32).reshape(1, self.n_inputs)

    def _check_values(self, out: np.ndarray) -> None:
        """Numbers beyond float32 became ±inf in the cast (binary tensor data may hold infinities
        too), and a feature that may not be missing is NaN: name the first such value."""
        if np.isinf(out).any():
            row, col = (int(v) for v in np.argwhere(np.isinf(out))[0])
            name = self._slot_feature[col]
            raise InvalidInput([FieldError(name, INFINITE_MESSAGE, row)])
        if len(self._required_slots):
            missing = np.isnan(out[:, self._required_slots])
            if missing.any():
                row, col = (int(v) for v in np.argwhere(missing)[0])
                name = self._slot_feature[int(self._required_slots[col])]
                raise InvalidInput([FieldError(name, REQUIRED_MESSAGE, row)])

    def _column_error(self, text: str) -> FieldError:
        """A msgspec error on ``{"columns": {...}}`` → the column (field) and row it names."""
        message, path = split_validation_error(text)
        if path == "$":
            return self._field_error(text)  # the top level: unknown key, not an object, ...
        match = _COLUMN_PATH_RE.match(path)
        field_name = match["field"] if match else None
        row = int(match["row"]) if match and match["row"] is not None else None
        named, message = _named_field(message)
        if named is not None:
            field_name = named  # reported at $.columns: the column is in the message
            if "missing" in message:
                message = f"required column is missing ({message})"
        feature = self.kinds.get(field_name or "")
        if feature is None and field_name is None:
            field_name = COLUMNS_KEY  # {"columns": <not an object>}
        elif feature is not None and "length" in message and row is None:
            message = f"a column must hold between 1 and {self.max_rows} values ({message})"
        elif feature is not None and message.startswith(("Expected", "Invalid enum")):
            what = _expected(feature)
            if row is None:  # the column itself is not an array
                what = f"an array of values, each {what}"
            message = f"expected {what} ({message})"
        return FieldError(field_name, message.replace("`", "'"), row)

    def _field_error(self, text: str) -> FieldError:
        message, path = split_validation_error(text)
        match = _PATH_RE.match(path)
        row = field_name = None
        if match:
            row = int(match["row"]) if match["row"] is not None else None
            field_name = match["field"]
        named, message = _named_field(message)
        if named is not None:
            field_name = named
        if field_name in self.kinds and message.startswith(("Expected", "Invalid enum")):
            message = f"expected {_expected(self.kinds[field_name])} ({message})"
        if path.startswith("$.records") and field_name is None and row is None:
            field_name = BATCH_KEY
            if "length" in message:
                message = f"{BATCH_KEY} must hold between 1 and {self.max_rows} rows ({message})"
        return FieldError(field_name, message.replace("`", "'"), row)
