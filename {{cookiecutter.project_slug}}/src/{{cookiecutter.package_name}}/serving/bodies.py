"""Request bodies in each form the service reads, for clients, the bench and the tests.

``/v1/predict`` reads one record, ``{"records": [...]}`` and ``{"columns": {...}}``
(``decoding.py``); ``as_columns`` turns records into the columnar form::

    requests.post(url, json=as_columns(records), headers={"X-API-Key": key})

``infer_request`` builds an Open Inference Protocol request (``POST /v2/models/<name>/infer``,
``open_inference.py``) the way its stock clients do: ``tritonclient`` sends the same bytes
(docs/serving.md shows both). Binary tensors are the fast form for large batches.

It needs only the standard library and NumPy, so a client can copy it as it is.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def as_columns(records: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{"columns": {name: [value per row]}}`` of ``records`` (the first record's names)."""
    names = list(records[0]) if records else []
    return {"columns": {name: [record[name] for record in records] for name in names}}


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
