"""The service's one error envelope, and the one table that maps every failure to it.

Every error body has this shape and never carries a traceback, a path or a class name::

    {"error": {"status": 422, "code": "invalid_input", "message": "...",
               "fields": [{"field": "x12", "row": 3, "message": "..."}]},
     "request_id": "..."}

The types below are what the service encodes *and* what the OpenAPI document is generated from
(``openapi.py``), so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from .decoding import InvalidInput, MalformedBody

RETRY_AFTER_S = "1"
_encode = msgspec.json.Encoder().encode


class FieldProblem(msgspec.Struct, omit_defaults=True):
    """One bad value: the field (feature or body key) and, in a batch, the row."""

    message: str
    field: str | None = None
    row: int | None = None


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    status: int
    code: str
    message: str
    fields: list[FieldProblem] | None = None


class ErrorEnvelope(msgspec.Struct):
    error: ErrorDetail
    request_id: str


class ApiError(Exception):
    """An answer other than 2xx: status, a stable machine-readable code and a sentence."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[FieldProblem] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers or {}

    def body(self, request_id: str, protocol: bool = False) -> bytes:
        """The envelope, or for the Open Inference Protocol's routes its ``{"error": "..."}``
        (the same sentence, with each field's problem after it)."""
        if protocol:
            problems = "; ".join(
                f"{p.field!r}" + (f" (row {p.row})" if p.row is not None else "") + f": {p.message}"
                for p in self.fields or ()
            )
            return _encode({"error": f"{self.message}: {problems}" if problems else self.message})
        detail = ErrorDetail(self.status, self.code, self.message, self.fields or None)
        return _encode(ErrorEnvelope(detail, request_id))

    def header_pairs(self) -> list[tuple[bytes, bytes]]:
        """Its own headers (``Retry-After``, ...) as an ASGI message carries them."""
        return [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]

    def asgi_headers(self, body: bytes) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *self.header_pairs(),
        ]


# Errors the guard and the routes raise, one constructor each.
def unauthorised() -> ApiError:
    return ApiError(
        401,
        "unauthorised",
        "missing or invalid X-API-Key header",
        headers={"WWW-Authenticate": "ApiKey"},
    )


def method_not_allowed(*allowed: str) -> ApiError:
    return ApiError(
        405, "method_not_allowed", "method not allowed", headers={"Allow": ", ".join(allowed)}
    )


def not_ready(reason: str = "the model is still loading") -> ApiError:
    return ApiError(503, "not_ready", reason, headers={"Retry-After": RETRY_AFTER_S})


def overloaded(message: str) -> ApiError:
    return ApiError(503, "overloaded", message, headers={"Retry-After": RETRY_AFTER_S})


def body_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"request body is over {limit} bytes",
        headers={"Connection": "close"},
    )


def timed_out(seconds: float) -> ApiError:
    return ApiError(504, "timeout", f"the request took longer than {seconds:g} s")


def internal_error() -> ApiError:
    return ApiError(500, "internal_error", "internal error; quote the request id")


def _invalid_input(exc: InvalidInput) -> ApiError:
    fields = [FieldProblem(e.message, e.field, e.row) for e in exc.errors]
    names = ", ".join(sorted({str(e.field) for e in exc.errors}))
    return ApiError(422, "invalid_input", f"invalid value for {names}", fields)


_HTTP_CODES = {
    404: ("not_found", "no such route"),
    405: ("method_not_allowed", "method not allowed"),
}


def _http_error(exc: HTTPException) -> ApiError:
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", "request refused"))
    return ApiError(exc.status_code, code, message, headers=dict(exc.headers or {}))


# The one table: exception type → the ApiError it answers with.
HANDLERS: dict[type[Exception], Callable[[Any], ApiError]] = {
    ApiError: lambda exc: exc,
    MalformedBody: lambda exc: ApiError(400, "malformed_json", str(exc)),
    InvalidInput: _invalid_input,
    HTTPException: _http_error,
    RequestValidationError: lambda exc: ApiError(422, "invalid_input", "the request is invalid"),
}


def as_api_error(exc: Exception) -> ApiError | None:
    """The answer to ``exc`` from the table, or None for an unexpected failure (→ 500)."""
    for kind in type(exc).__mro__:
        handler = HANDLERS.get(kind)
        if handler is not None:
            return handler(exc)
    return None


def is_protocol_path(path: str) -> bool:
    """Routes of the Open Inference Protocol answer errors with its body."""
    return path == "/v2" or path.startswith("/v2/")


def response(request_id: str, error: ApiError, protocol: bool = False) -> Response:
    return Response(
        error.body(request_id, protocol),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )


def install(app: FastAPI) -> None:
    """Answer every exception type of the table with the envelope, in FastAPI's routes."""

    async def handle(request: Request, exc: Exception) -> Response:
        error = as_api_error(exc)
        assert error is not None  # noqa: S101  # nosec B101 - registered for table types only
        protocol = is_protocol_path(request.url.path)
        return response(request.scope.get("request_id", ""), error, protocol)

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette's last resort answers in plain text; this is the envelope instead (the
        # exception still reaches the guard, which logs it with its traceback).
        return response(request.scope.get("request_id", ""), internal_error())

    for kind in HANDLERS:
        app.add_exception_handler(kind, handle)
    app.add_exception_handler(Exception, unexpected)
