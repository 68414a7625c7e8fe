"""The Open Inference Protocol (KServe V2, also spoken by Triton, MLServer and Seldon), REST.

``POST /v2/models/{name}/infer`` takes one input tensor per feature, named as the feature:

* numbers as ``FP32`` or ``FP64`` (NaN = missing in binary data; JSON has no NaN, so ``null``);
* money and percent columns as ``BYTES`` strings (``"$1,234.56"``, ``"67%"``), parsed exactly as
  everywhere else, or as ``FP32``/``FP64`` amounts;
* categories as ``BYTES`` strings, one of the feature's levels (``""`` = missing).

Shapes are ``[N]`` or ``[N, 1]``, the same N for every input, 1 to MAX_BATCH_ROWS; a nullable
feature's tensor may be left out (all missing). Data come as JSON (``"data": [...]``) or, with the
binary tensor data extension, as raw little-endian bytes after the JSON header
(``Inference-Header-Content-Length`` gives the header's size, ``binary_data_size`` each tensor's;
a BYTES element is a 4-byte length and its bytes). The answer has two outputs, ``p_hat`` (FP32)
and ``business_outcome`` (BOOL), in JSON or, when asked (``binary_data`` on an output or
``binary_data_output`` on the request), as binary data the same way.

The tensors end in the same validated float32 input tensor as ``/v1/predict``
(``RequestDecoder.columns_tensor``): same checks, same values, same errors, answered with the
protocol's error body ``{"error": "..."}``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from ..features import MAX_TEXT_CHARS, FeatureSchema, FieldError, preview
from .decoding import (
    FLOAT32,
    TENSORS,
    Decoded,
    InvalidInput,
    Lines,
    MalformedBody,
    RequestDecoder,
    split_validation_error,
)

NUMBER_TYPES = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
OUTPUTS = {"p_hat": "FP32", "business_outcome": "BOOL"}
HEADER_LENGTH = b"inference-header-content-length"
PLATFORM = "onnxruntime_onnx"


class TensorInput(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    # Decoded once the datatype is known (msgspec.Raw cannot be in a union: empty = no data).
    data: msgspec.Raw = msgspec.Raw(b"")


class RequestedOutput(msgspec.Struct, forbid_unknown_fields=True):
    name: Literal["p_hat", "business_outcome"]
    parameters: dict[str, Any] | None = None


class InferenceRequest(msgspec.Struct, forbid_unknown_fields=True):
    inputs: list[TensorInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None


class ResponseOutput(msgspec.Struct, omit_defaults=True):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class InferenceResponse(msgspec.Struct, omit_defaults=True):
    model_name: str
    model_version: str
    outputs: list[ResponseOutput]
    id: str | None = None


class TensorMetadata(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(msgspec.Struct):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(msgspec.Struct):
    name: str
    version: str
    extensions: list[str]


class ProtocolError(msgspec.Struct):
    """The protocol's error body."""

    error: str


_NUMBERS = msgspec.json.Decoder(list[FLOAT32 | list[FLOAT32 | None] | None])
_TEXTS = msgspec.json.Decoder(
    list[Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)] | list[str | None] | None]
)
_CATEGORIES = msgspec.json.Decoder(list[str | list[str | None] | None])
_REQUEST = msgspec.json.Decoder(InferenceRequest)
_encode = msgspec.json.Encoder().encode


@dataclass
class Inference:
    """A decoded inference request: the rows, and how the answer should look."""

    decoded: Decoded
    request_id: str | None
    outputs: dict[str, bool]  # output name → send it as binary data


def _flat(values: list[Any]) -> list[Any]:
    """``[[a], [b]]`` (shape [N, 1]) → ``[a, b]``; flat lists pass as they are."""
    if values and values[0].__class__ is list:
        return [item for row in values for item in row]
    return values


def bytes_texts(buffer: memoryview, name: str, n: int) -> Sequence[str]:
    """A binary BYTES tensor → its ``n`` elements as text (each a 4-byte length + UTF-8).

    Without a Python loop over the elements when it can (a 10,000-element tensor takes ~5 ms
    that way): ``_element_starts`` finds where each element begins, NumPy drops the length
    prefixes and puts a newline between elements, and one decode makes ``Lines``, which the
    money/percent parsers read whole, without a string per element.
    """
    starts = _element_starts(buffer, name, n)
    data = np.frombuffer(buffer, dtype=np.uint8)
    keep = np.ones(len(data), dtype=bool)
    keep[(starts[:, None] + np.arange(4)).ravel()] = False
    joined = data.copy()
    joined[starts[1:]] = 0x0A  # "\n" where each later element's length was
    keep[starts[1:]] = True
    try:
        text = joined[keep].tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(name, "a BYTES element is not UTF-8 text") from None
    if text.count("\n") == n - 1:
        return Lines(text, n)
    # An element holds a newline itself: cut them out one by one (rare, and still correct).
    stops = [*starts[1:].tolist(), len(data)]
    return [str(buffer[a + 4 : b], "utf-8") for a, b in zip(starts.tolist(), stops, strict=True)]


def category_codes(
    buffer: memoryview, name: str, n: int, categories: tuple[str, ...], required: bool
) -> np.ndarray:
    """A binary BYTES tensor of categories → each element's index in ``categories``, -1 for
    ``""`` (missing); compared as bytes, all elements at once, without a string per element."""
    table = _category_table(categories)
    starts = _element_starts(buffer, name, n)
    data = np.frombuffer(buffer, dtype=np.uint8)
    lengths = np.diff(np.append(starts, len(data))) - 4
    codes = table.match(data, starts + 4, lengths)
    unknown = np.flatnonzero(codes == -2)
    if len(unknown):
        row = int(unknown[0])
        begin = int(starts[row]) + 4
        value = str(buffer[begin : begin + int(lengths[row])], "utf-8", "replace")
        raise InvalidInput(
            [FieldError(name, f"{preview(value)} is not one of {list(categories)}", row)]
        )
    if required and (codes == -1).any():
        row = int(np.flatnonzero(codes == -1)[0])
        raise InvalidInput([FieldError(name, "a value is required", row)])
    return codes


class _CategoryTable:
    """One feature's categories as 64-bit words, to match a tensor's elements all at once.

    An element's bytes, zero-padded to the width of the longest category (a multiple of 8) and
    read as words, equal a category's words, with the same length, exactly when the element is
    that category. A multiply-xor of length and words picks the one category each element may
    be (``searchsorted`` over the categories' own keys, which differ); words and length are
    then compared exactly. A few NumPy calls per word, however many categories there are (one
    pass per category was ~2x slower at 12).
    """

    def __init__(self, categories: tuple[str, ...]):
        encoded = [category.encode() for category in categories]
        self.width = 8 * max(1, -(-max(map(len, encoded)) // 8))
        table = np.zeros((len(encoded), self.width), dtype=np.uint8)
        for row, word in enumerate(encoded):
            table[row, : len(word)] = np.frombuffer(word, dtype=np.uint8)
        self.lengths = np.array([len(word) for word in encoded])
        self.words = list(table.view("<u8").T)  # word j of every category
        # masks[j][k]: keeps the bytes of word j that an element of k bytes has, zeroes the rest.
        kept = np.arange(self.width) < np.arange(self.width + 1)[:, None]
        self.masks = list(np.where(kept, 0xFF, 0).astype(np.uint8).view("<u8").T)
        for mix in range(0x9E3779B97F4A7C15, 1 << 64, 2):  # odd: each word spreads over the key
            self.mix = np.uint64(mix)
            keys = self._key(self.lengths, self.words)
            if len(np.unique(keys)) == len(keys):  # (the first constant, but for a rare clash)
                break
        self.order = np.argsort(keys)
        self.keys = keys[self.order]

    def _key(self, lengths: np.ndarray, words: list[np.ndarray]) -> np.ndarray:
        key = lengths.astype(np.uint64)
        for word in words:
            key = key * self.mix ^ word  # wraps around: a hash, not a number
        return key

    def match(self, data: np.ndarray, begins: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Each element's category index, -1 for an empty element, -2 for any other text."""
        padded = np.concatenate([data, np.zeros(self.width, dtype=np.uint8)])
        windows = np.lib.stride_tricks.sliding_window_view(padded, self.width)[begins]
        filled = np.minimum(lengths, self.width)
        words = [
            word & mask[filled]
            for word, mask in zip(windows.view("<u8").T, self.masks, strict=True)
        ]
        found = np.searchsorted(self.keys, self._key(lengths, words))
        candidate = self.order[np.minimum(found, len(self.keys) - 1)]
        same = lengths == self.lengths[candidate]
        for word, category_word in zip(words, self.words, strict=True):
            same &= word == category_word[candidate]
        codes = np.where(same, candidate, -2)
        codes[lengths == 0] = -1
        return codes


@functools.cache
def _category_table(categories: tuple[str, ...]) -> _CategoryTable:
    return _CategoryTable(categories)


def _element_starts(buffer: memoryview, name: str, n: int) -> np.ndarray:
    """Offsets of the ``n`` length-prefixed elements; the data must hold exactly those.

    Each start depends on the one before, so the exact walk is a loop. Text has no zero bytes,
    though, and a short element's 4-byte length ends in three: a run of 3 zeros follows the
    length byte of an element, a run of 4k zeros is k empty elements. Those runs give a guess in
    a few NumPy passes, which is then checked exactly (every start is the previous one plus 4
    plus its length, and the last ends at the end); anything else takes the loop.
    """
    data = np.frombuffer(buffer, dtype=np.uint8)
    size = len(data)
    guess = _starts_from_zero_runs(data)
    if guess is not None and len(guess) == n and size >= 4:
        # A guessed start is a byte before three zeros (or four zeros): its length is that byte.
        following = guess + 4 + data[guess]
        if guess[0] == 0 and following[-1] == size and (following[:-1] == guess[1:]).all():
            return guess
    return _walk(buffer, name, n)


def _starts_from_zero_runs(data: np.ndarray) -> np.ndarray | None:
    zero = np.concatenate([[False], data == 0, [False]]).view(np.int8)
    edges = np.diff(zero)
    begins, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    runs = ends - begins
    prefixed = runs == 3  # [length][0][0][0] of a non-empty element
    empties = runs % 4 == 0  # k empty elements: [0][0][0][0] k times
    if not (prefixed | empties).all():
        return None
    counts = runs[empties] // 4  # each such run: its empty elements, 4 bytes apart
    first = np.repeat(begins[empties], counts)
    nth = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.sort(np.concatenate([begins[prefixed] - 1, first + 4 * nth]))


def _walk(buffer: memoryview, name: str, n: int) -> np.ndarray:
    """The exact walk, element by element (and the precise error)."""
    starts = np.empty(n, dtype=np.int64)
    position, size = 0, len(buffer)
    for i in range(n):
        if position + 4 > size:
            break
        starts[i] = position
        position += 4 + int.from_bytes(buffer[position : position + 4], "little")
    else:
        if position == size:
            return starts
    message = f"binary BYTES data is not {n} elements of a 4-byte length and UTF-8 bytes"
    raise _bad(name, message)


class InferenceDecoder:
    """Open Inference Protocol request bytes → the same tensor as ``/v1/predict``."""

    def __init__(self, schema: FeatureSchema, decoder: RequestDecoder, model_name: str):
        self.decoder = decoder
        self.max_rows = decoder.max_rows
        self.model_name = model_name
        self.features = {f.name: f for f in schema.features}
        self.position = {name: i for i, name in enumerate(decoder.names)}
        self.required = [f.name for f in schema.features if not f.nullable]
        # Per struct field, in ``names`` order: its categories (as a set) and whether required.
        self._one_row_fields = [
            (frozenset(labels), not self.features[name].nullable)
            for name, labels in zip(decoder.names, decoder.categories, strict=True)
        ]

    # -- the request -------------------------------------------------------------------------
    def decode(self, body: bytes, header_length: bytes | None) -> Inference:
        header, binary = self._split(body, header_length)
        try:
            request = _REQUEST.decode(header)
        except msgspec.ValidationError as exc:
            message, path = split_validation_error(str(exc))
            raise _bad(path, _clean(message)) from None
        except msgspec.DecodeError:
            where = f"its first {len(header)} bytes" if header_length else "the body"
            raise MalformedBody(
                f"the inference header ({where}) is not valid JSON (JSON has no NaN: send a "
                "missing number as null, or as NaN in binary tensor data)"
            ) from None
        values: list[Any] = [None] * len(self.position)
        rows = None
        offset = 0
        for tensor in request.inputs:
            n, column, offset = self._column(tensor, binary, offset)
            if rows is not None and n != rows:
                message = f"shape {tensor.shape} has {n} rows, other inputs have {rows}"
                raise InvalidInput([FieldError(tensor.name, message)])
            rows = n
            if values[self.position[tensor.name]] is not None:
                raise InvalidInput([FieldError(tensor.name, "input given twice")])
            values[self.position[tensor.name]] = column
        if offset != len(binary):
            message = f"{len(binary) - offset} bytes of binary data after the last input's"
            raise InvalidInput([FieldError("inputs", message)])
        missing = [name for name in self.required if values[self.position[name]] is None]
        if missing:
            raise InvalidInput([FieldError(name, "required input is missing") for name in missing])
        tensor = self._one_row(values) if rows == 1 and not binary else None
        if tensor is None:
            tensor = self.decoder.columns_tensor(values)
        names, categories = self.decoder.names, self.decoder.categories
        decoded = Decoded(tensor, TENSORS, request, names, categories, values)
        return Inference(decoded, request.id, self._outputs(request))

    def _one_row(self, values: list[Any]) -> np.ndarray | None:
        """One row of JSON tensors, laid out as ``/v1``'s single record is (``one_row``: ~5x
        faster than one column per feature). None when a value is missing where it may not be,
        is not one of the categories or did not come as JSON: ``columns_tensor`` then checks it
        and names the error, exactly as for any other batch."""
        record = []
        for column, (labels, required) in zip(values, self._one_row_fields, strict=True):
            if column is not None and column.__class__ is not list:
                return None  # binary data (an array): the columns path checks its values
            value = None if column is None else column[0]
            if labels:
                if value == "":
                    value = None  # a tensor's missing category
                elif value is not None and value not in labels:
                    return None
            if value is None and required:
                return None
            record.append(value)
        try:
            return self.decoder.one_row(tuple(record))
        except InvalidInput:
            return None

    def _split(self, body: bytes, header_length: bytes | None) -> tuple[bytes, memoryview]:
        if header_length is None:
            return body, memoryview(b"")
        if not header_length.isdigit() or int(header_length) > len(body):
            message = "Inference-Header-Content-Length is not a length within the body"
            raise InvalidInput([FieldError(HEADER_LENGTH.decode(), message)])
        size = int(header_length)
        return body[:size], memoryview(body)[size:]

    def _column(self, tensor: TensorInput, binary: memoryview, offset: int) -> tuple[int, Any, int]:
        """(rows, the column for ``columns_tensor``, offset after its binary data)."""
        name = tensor.name
        feature = self.features.get(name)
        if feature is None:
            message = f"no such input: GET /v2/models/{self.model_name} lists the inputs"
            raise _bad(name, message)
        shape = tensor.shape
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise _bad(name, f"shape {shape} is not [N] or [N, 1]")
        n = shape[0]
        if not 1 <= n <= self.max_rows:
            raise _bad(name, f"{n} rows; between 1 and {self.max_rows} are accepted")
        kind, datatype = feature.kind, tensor.datatype
        text = datatype == "BYTES"
        if not (datatype in NUMBER_TYPES and kind != "categorical") and not (
            text and kind != "numeric"
        ):
            expected = _datatypes(kind)
            raise _bad(name, f"datatype {datatype}; this input takes {expected}")
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise _bad(name, "binary_data_size is beyond the binary data sent")
            chunk = binary[offset : offset + size]
            offset += size
            if kind == "categorical":
                column = category_codes(chunk, name, n, feature.categories, not feature.nullable)
            elif text:
                column = bytes_texts(chunk, name, n)
            else:
                column = self._binary_numbers(chunk, datatype, name, n)
        elif len(tensor.data):
            column = self._json_data(tensor.data, kind, datatype, name, n)
        else:
            raise _bad(name, "no data: give 'data' or binary_data_size")
        required = kind == "categorical" and not feature.nullable
        if required and isinstance(column, list) and ("" in column or None in column):
            row = min(column.index(v) for v in ("", None) if v in column)
            raise InvalidInput([FieldError(name, "a value is required", row)])
        return n, column, offset

    @staticmethod
    def _binary_numbers(chunk: memoryview, datatype: str, name: str, n: int) -> np.ndarray:
        dtype = NUMBER_TYPES[datatype]
        if len(chunk) != n * dtype.itemsize:
            message = f"{len(chunk)} bytes of {datatype} data for {n} rows ({dtype.itemsize} each)"
            raise InvalidInput([FieldError(name, message)])
        # Cast to float32 in the tensor itself, where one pass over it finds any infinity
        # (``columns_tensor``), instead of one pass per input.
        return np.frombuffer(chunk, dtype=dtype)

    @staticmethod
    def _json_data(data: msgspec.Raw, kind: str, datatype: str, name: str, n: int) -> Any:
        if datatype in NUMBER_TYPES:
            decoder = _NUMBERS
        else:
            decoder = _CATEGORIES if kind == "categorical" else _TEXTS
        try:
            values = _flat(decoder.decode(data))
        except msgspec.ValidationError as exc:
            message, path = split_validation_error(str(exc))  # path: $[row] or $[row][0]
            row = path[2:].split("]", 1)[0]
            raise InvalidInput(
                [FieldError(name, _clean(message), int(row) if row.isdigit() else None)]
            ) from None
        if len(values) != n:
            raise _bad(name, f"{len(values)} values for shape [{n}]")
        if decoder is _NUMBERS and n > 1:  # None → NaN: missing, as in binary data
            return np.array(values, dtype=np.float64)
        return values  # one row: its value is read as it is (``_one_row``)

    @staticmethod
    def _outputs(request: InferenceRequest) -> dict[str, bool]:
        default = bool((request.parameters or {}).get("binary_data_output", False))
        if not request.outputs:
            return dict.fromkeys(OUTPUTS, default)
        return {
            o.name: bool((o.parameters or {}).get("binary_data", default)) for o in request.outputs
        }

    # -- the answer --------------------------------------------------------------------------
    def response(
        self, inference: Inference, version: str, p: np.ndarray, threshold: float
    ) -> tuple[bytes, bytes | None]:
        """(body, Inference-Header-Content-Length or None when the body is all JSON)."""
        n = len(p)
        arrays = {
            "p_hat": p.astype("<f4", copy=False),
            "business_outcome": p >= threshold,
        }
        outputs, binary = [], []
        for name, as_binary in inference.outputs.items():
            array = arrays[name]
            if as_binary:
                data = array.tobytes()
                binary.append(data)
                params = {"binary_data_size": len(data)}
                outputs.append(ResponseOutput(name, OUTPUTS[name], [n], parameters=params))
            else:
                outputs.append(ResponseOutput(name, OUTPUTS[name], [n], data=array.tolist()))
        header = _encode(InferenceResponse(self.model_name, version, outputs, inference.request_id))
        if not binary:
            return header, None
        return b"".join([header, *binary]), str(len(header)).encode()

    def metadata(self, version: str) -> ModelMetadata:
        inputs = [
            TensorMetadata(f.name, _datatypes(f.kind).split(" ")[0], [-1])
            for f in self.features.values()
        ]
        outputs = [TensorMetadata(name, datatype, [-1]) for name, datatype in OUTPUTS.items()]
        return ModelMetadata(self.model_name, [version], PLATFORM, inputs, outputs)


def _bad(name: str, message: str) -> InvalidInput:
    return InvalidInput([FieldError(name, message)])


def _datatypes(kind: str) -> str:
    """The datatypes an input of this kind takes, the declared one first."""
    return {
        "numeric": "FP32 (or FP64)",
        "categorical": "BYTES",
    }.get(kind, "BYTES (or FP32/FP64 amounts)")


def _clean(message: str) -> str:
    return message.replace("`", "'")
