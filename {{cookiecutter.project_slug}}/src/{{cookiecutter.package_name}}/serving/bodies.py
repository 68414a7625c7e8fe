"""Request bodies in each form the service reads, for clients, the bench and the tests.

The service reads three forms (``decoding.py``): one record, ``{"records": [...]}`` and
``{"columns": {...}}``. In the columnar form a number column may be *packed*: one base64 string
of the column's values as little-endian IEEE-754 float64, NaN for a missing value. This module
is the one definition of that packing, on both sides::

    body = as_columns(records, packed=numeric_names)   # or pack_column(df["x0"]) per column
    requests.post(url, json=body, headers={"X-API-Key": key})

``infer_request`` builds an Open Inference Protocol request (``POST /v2/models/<name>/infer``)
the way its stock clients do (``tritonclient`` builds the same bytes; docs/serving.md shows it).

It needs only the standard library and NumPy, so a client can copy it as it is.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import numpy as np

PACKED_DTYPE = np.dtype("<f8")  # little-endian float64: 8 bytes a row, NaN = missing


def pack_column(values: Iterable[float | None]) -> str:
    """Values of one number column → the packed form (base64 text); None → NaN (missing)."""
    array = np.fromiter(
        (math.nan if value is None else value for value in values), dtype=PACKED_DTYPE
    )
    return base64.b64encode(array.tobytes()).decode("ascii")


def unpack_column(text: str | bytes) -> list[float | None]:
    """The packed form → values, NaN → None: what the same column holds as a JSON array."""
    raw = base64.b64decode(text) if isinstance(text, str) else text
    return [None if math.isnan(v) else v for v in np.frombuffer(raw, PACKED_DTYPE).tolist()]


def as_columns(
    records: list[Mapping[str, Any]], packed: Collection[str] = ()
) -> dict[str, dict[str, Any]]:
    """``{"columns": {name: [value per row]}}`` of ``records``; names in ``packed`` packed."""
    names = list(records[0]) if records else []
    columns: dict[str, Any] = {}
    for name in names:
        values = [record[name] for record in records]
        columns[name] = pack_column(values) if name in packed else values
    return {"columns": columns}


def infer_request(
    features: Iterable[tuple[str, str]], records: list[Mapping[str, Any]], binary: bool = True
) -> tuple[bytes, bytes | None]:
    """(body, Inference-Header-Content-Length or None) of an inference request for ``records``.

    ``features`` are ``(name, kind)`` pairs: numbers go as FP32 (NaN = missing, binary only:
    JSON has no NaN), everything else as BYTES text ("" = missing). With ``binary`` the tensors
    follow the JSON header as raw bytes, and the answer is asked for as binary data too.
    """
    inputs, chunks = [], []
    for name, kind in features:
        values = [record.get(name) for record in records]
        tensor: dict[str, Any] = {"name": name, "shape": [len(values)]}
        if kind == "numeric":
            tensor["datatype"] = "FP32"
            numbers = np.array([math.nan if v is None else v for v in values], dtype="<f4")
            if binary:
                data: Any = numbers.tobytes()
            else:  # JSON has no NaN: a missing number is null
                data = [None if x != x else x for x in numbers.tolist()]
        else:
            tensor["datatype"] = "BYTES"
            texts = ["" if v is None else str(v) for v in values]
            data = (
                b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
                if binary
                else texts
            )
        if binary:
            tensor["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            tensor["data"] = data
        inputs.append(tensor)
    request: dict[str, Any] = {"inputs": inputs}
    if binary:
        request["parameters"] = {"binary_data_output": True}
    header = json.dumps(request).encode()
    if not binary:
        return header, None
    return header + b"".join(chunks), str(len(header)).encode()
