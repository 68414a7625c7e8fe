"""The FastAPI application: routes, the protective ASGI guard and the error envelope.

Every error body has the same shape and never carries a traceback, a path or a class name::

    {"error": {"status": 422, "code": "invalid_input", "message": "...",
               "fields": [{"field": "x12", "row": 3, "message": "..."}]},
     "request_id": "..."}
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from .bodies import unpack_column
from .config import Settings
from .decoding import COLUMNS, RECORD, RECORDS, InvalidInput, MalformedBody, RequestDecoder
from .logs import ACCESS_LOGGER, SAMPLE_EVENT, SAMPLE_LOGGER
from .metrics import Metrics
from .model import Model, load_schema

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)
sample_log = logging.getLogger(SAMPLE_LOGGER)

PREDICT = "/v1/predict"
MODEL = "/v1/model"
LIVE = "/health/live"
READY = "/health/ready"
NOOP = "/_bench/noop"  # bench mode only: the same stack with no work, the bench's baseline
KNOWN_ROUTES = frozenset({PREDICT, MODEL, LIVE, READY, NOOP, "/docs", "/openapi.json"})
LIMITED_ROUTES = frozenset({PREDICT, NOOP})  # concurrency, timeout: never the health checks
KNOWN_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
REQUEST_ID_RE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
RETRY_AFTER_S = "1"

_encode = msgspec.json.Encoder().encode
_random_bits = random.Random().getrandbits  # noqa: S311  # nosec B311 - ids and sampling, not secrets


class _Prediction(msgspec.Struct, gc=False):
    """One row of a batch answer (a Struct encodes ~2x faster than a dict)."""

    p_hat: float
    business_outcome: int


def batch_response(version: str, threshold: float, p: np.ndarray) -> bytes:
    """The answer to both batch forms: one object per row, in the rows' order.

    A columnar answer ({"p_hat": [...], "business_outcome": [...]}) would save ~2 ms of ~100 on
    10,000 rows (``bench --decoders``): not worth a second response shape.
    """
    outcome = (p >= threshold).astype(np.int8).tolist()
    predictions = [_Prediction(a, b) for a, b in zip(p.tolist(), outcome, strict=True)]
    return _encode({"model_version": version, "predictions": predictions})


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers or {}


def error_body(request_id: str, status: int, code: str, message: str, fields: Any = None) -> bytes:
    error: dict[str, Any] = {"status": status, "code": code, "message": message}
    if fields:
        error["fields"] = fields
    return _encode({"error": error, "request_id": request_id})


def error_response(request: Request, exc: ApiError) -> Response:
    request_id = request.scope.get("request_id", "")
    body = error_body(request_id, exc.status, exc.code, exc.message, exc.fields)
    return Response(
        body, status_code=exc.status, headers=exc.headers, media_type="application/json"
    )


class Service:
    """What the routes share: settings, schema-driven decoder, the model and its readiness."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.schema = load_schema(settings.model_dir)  # small, and the OpenAPI doc needs it
        self.decoder = RequestDecoder(self.schema, settings.max_batch_rows)
        self.threshold = float(self.schema.threshold)
        self.model: Model | None = None
        self.version = ""
        self.draining = False
        self.on_fatal: Callable[[], None] = lambda: None
        # One worker: inference is single-threaded by design; a second batch waits its turn.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._key_digests = [hashlib.sha256(k.encode()).digest() for k in settings.api_keys]
        self.sample_rate = settings.prediction_sample_rate
        self._sampler = np.random.default_rng()
        self.metrics.model_ready.set(0)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self.model is not None

    @property
    def ready(self) -> bool:
        return self.model is not None and not self.draining

    def load(self) -> None:
        """Load and warm the model (blocking); readiness turns on only at the end."""
        started = time.perf_counter()
        model = Model.load(self.settings.model_dir, self.schema)
        model.warm_up()
        self.model, self.version = model, model.version
        self.metrics.set_model(model.version, model.sha256)
        self.metrics.model_ready.set(1)
        log.info(
            "model ready",
            extra={
                "model_version": model.version,
                "sha256": model.sha256,
                "load_ms": round((time.perf_counter() - started) * 1e3, 1),
            },
        )

    async def load_in_background(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.load)
        except Exception:
            log.exception("model load failed: the service cannot become ready")
            self.on_fatal()
            return
        # Everything loaded so far lives as long as the process: keep it out of the cyclic
        # GC's full collections (fewer latency spikes, a few % more throughput; measured).
        gc.collect()
        gc.freeze()

    def begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            log.info("draining: readiness is now 503, in-flight requests finish")

    # -- request work ----------------------------------------------------------------------
    def authorised(self, presented: str | None) -> bool:
        if self.settings.auth_disabled:
            return True
        digest = hashlib.sha256((presented or "").encode()).digest()
        ok = False
        for key in self._key_digests:  # every key, every time: constant time over all keys
            ok |= hmac.compare_digest(digest, key)
        return ok

    def score(self, body: bytes, request_id: str = "") -> bytes:
        """Body bytes → response bytes; raises MalformedBody / InvalidInput for bad input."""
        model = self.model
        if model is None:  # the route checks readiness first; this guards direct callers
            raise RuntimeError("the model is not loaded")
        tensor, form = self.decoder.decode_form(body)
        p = model.predict(tensor)
        self.metrics.score.observe_many(p)
        if self.sample_rate:
            self._log_samples(body, form, p, request_id)
        if form == RECORD:
            value = float(p[0])
            return _encode(
                {
                    "p_hat": value,
                    "business_outcome": int(value >= self.threshold),
                    "model_version": self.version,
                }
            )
        return batch_response(self.version, self.threshold, p)

    def _log_samples(self, body: bytes, form: str, p: np.ndarray, request_id: str) -> None:
        """Log a random fraction of the scored records, with their raw input, for drift."""
        chosen = np.flatnonzero(self._sampler.random(len(p)) < self.sample_rate)
        if not len(chosen):
            return
        raw = msgspec.json.decode(body)  # valid: it was just decoded against the schema
        if form == COLUMNS:  # a packed column is logged as the numbers it holds
            columns = {
                name: unpack_column(column) if isinstance(column, str) else column
                for name, column in raw["columns"].items()
            }
        for i in chosen.tolist():
            if form == COLUMNS:  # the row's value from each column given
                record = {name: column[i] for name, column in columns.items()}
            else:
                record = raw["records"][i] if form == RECORDS else raw
            sample_log.info(
                SAMPLE_EVENT,
                extra={
                    "event": SAMPLE_EVENT,
                    "features": record,
                    "p_hat": float(p[i]),
                    "model_version": self.version,
                    "request_id": request_id,
                },
            )


class BodyTooLarge(Exception):
    """A streamed body passed MAX_BODY_BYTES while it was being read (→ 413)."""


class Guard:
    """Pure-ASGI outer layer: request id, limits, timeout, metrics and the access log line.

    Limits apply to prediction routes only, so health checks answer under overload; metrics
    are on their own port and thread.
    """

    def __init__(self, app: ASGIApp, service: Service):
        self.app = app
        self.service = service
        self.settings = service.settings
        self.metrics = service.metrics
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = length = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value if REQUEST_ID_RE.match(value) else None
            elif key == b"content-length":
                length = value
        # Correlation ids, not secrets: a PRNG is enough (4x cheaper than uuid4's urandom).
        rid = request_id.decode() if request_id else f"{_random_bits(128):032x}"
        rid_header = (b"x-request-id", rid.encode())
        scope["request_id"] = rid
        path = scope["path"]
        route = path if path in KNOWN_ROUTES else "unmatched"
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        limited = route in LIMITED_ROUTES
        status = 500
        response_started = False
        settings = self.settings
        max_body = settings.max_body_bytes

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    raise BodyTooLarge
            return message

        async def reject(code: int, kind: str, message: str, headers: list | None = None) -> None:
            body = error_body(rid, code, kind, message)
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        *(headers or []),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

        self.metrics.in_flight.inc()
        counted = False
        try:
            if limited and self.active >= settings.max_concurrency:
                self.metrics.rejected.labels("overload").inc()
                await reject(
                    503,
                    "overloaded",
                    "too many requests in flight; retry shortly",
                    [(b"retry-after", RETRY_AFTER_S.encode())],
                )
            elif length is not None and (not length.isdigit() or int(length) > max_body):
                if not length.isdigit():
                    await reject(400, "bad_request", "invalid Content-Length header")
                else:
                    self.metrics.rejected.labels("body_too_large").inc()
                    await reject(413, "body_too_large", f"request body is over {max_body} bytes")
            elif limited:
                self.active += 1
                counted = True
                try:
                    async with asyncio.timeout(settings.request_timeout_s):
                        await self.app(scope, receive_limited, send_with_id)
                except TimeoutError:
                    self.metrics.rejected.labels("timeout").inc()
                    if not response_started:
                        await reject(
                            504,
                            "timeout",
                            f"the request took longer than {settings.request_timeout_s:g} s",
                        )
            else:
                await self.app(scope, receive_limited, send_with_id)
        except BodyTooLarge:
            self.metrics.rejected.labels("body_too_large").inc()
            if not response_started:
                await reject(413, "body_too_large", f"request body is over {max_body} bytes")
        except Exception:
            log.exception("unhandled error", extra={"request_id": rid, "route": route})
            if not response_started:
                await reject(500, "internal_error", "internal error; quote the request id")
        finally:
            if counted:
                self.active -= 1
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(route, method, status, elapsed)
            access_log.info(
                "request",
                extra={
                    "request_id": rid,
                    "method": method,
                    "route": route,
                    "status": status,
                    "latency_ms": round(elapsed * 1e3, 3),
                    "model_version": self.service.version,
                },
            )


def _responses(decoder: RequestDecoder) -> dict[int | str, dict[str, Any]]:
    error = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    }
    return {
        200: {
            "description": "p_hat and business_outcome per record, with the model version",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/Prediction"},
                            {"$ref": "#/components/schemas/BatchPrediction"},
                        ]
                    }
                }
            },
        },
        400: {"description": "the body is not JSON", **error},
        401: {"description": "missing or wrong X-API-Key", **error},
        413: {"description": "body over MAX_BODY_BYTES", **error},
        422: {"description": "the body does not match the feature schema", **error},
        503: {"description": "model not ready, or overloaded (see Retry-After)", **error},
        504: {"description": "over REQUEST_TIMEOUT_S", **error},
    }


_RESPONSE_SCHEMAS: dict[str, Any] = {
    "Prediction": {
        "type": "object",
        "required": ["p_hat", "business_outcome", "model_version"],
        "properties": {
            "p_hat": {"type": "number", "minimum": 0, "maximum": 1},
            "business_outcome": {"type": "integer", "enum": [0, 1]},
            "model_version": {"type": "string"},
        },
    },
    "BatchPrediction": {
        "type": "object",
        "required": ["model_version", "predictions"],
        "properties": {
            "model_version": {"type": "string"},
            "predictions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["p_hat", "business_outcome"],
                    "properties": {
                        "p_hat": {"type": "number", "minimum": 0, "maximum": 1},
                        "business_outcome": {"type": "integer", "enum": [0, 1]},
                    },
                },
            },
        },
    },
    "ErrorEnvelope": {
        "type": "object",
        "required": ["error", "request_id"],
        "properties": {
            "request_id": {"type": "string"},
            "error": {
                "type": "object",
                "required": ["status", "code", "message"],
                "properties": {
                    "status": {"type": "integer"},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "field": {"type": ["string", "null"]},
                                "row": {"type": "integer"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def create_app(service: Service) -> FastAPI:
    settings = service.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None if service.loaded else asyncio.create_task(service.load_in_background())
        yield
        if task is not None and not task.done():
            task.cancel()
        # The worker thread is left alone: by now uvicorn has drained every request, and an
        # idle pool thread ends with the interpreter. (Shutting the pool down here would break
        # an app whose lifespan runs more than once, as test clients do.)

    docs = settings.docs_enabled
    app = FastAPI(
        title=__name__.split(".")[0].replace("_", " ") + " model service",
        version=__version__,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        lifespan=lifespan,
    )
    app.state.service = service
    body_schema, components = service.decoder.json_schema()
    auth = [{"ApiKey": []}]

    def check_auth(request: Request) -> None:
        if not service.authorised(request.headers.get("x-api-key")):
            raise ApiError(
                401,
                "unauthorised",
                "missing or invalid X-API-Key header",
                headers={"WWW-Authenticate": "ApiKey"},
            )

    def check_loaded() -> None:
        if not service.loaded:
            raise ApiError(
                503,
                "not_ready",
                "the model is still loading",
                headers={"Retry-After": RETRY_AFTER_S},
            )

    async def predict(request: Request) -> Response:
        check_auth(request)
        check_loaded()
        body = await request.body()
        if len(body) > settings.offload_body_bytes:
            # The worker thread (the default for every body): the event loop keeps reading and
            # answering other requests meanwhile, and the timeout can still answer 504.
            loop = asyncio.get_running_loop()
            content = await loop.run_in_executor(
                service.executor, service.score, body, request.scope.get("request_id", "")
            )
        else:
            content = service.score(body, request.scope.get("request_id", ""))
        return Response(content, media_type="application/json")

    # The two hot routes are plain Starlette routes: FastAPI's per-request dependency solving
    # and telemetry hooks cost ~30 us and these routes take no parameters. OpenAPI documents
    # /v1/predict by hand below (its body schema comes from features.json anyway).
    app.router.add_route(PREDICT, predict, methods=["POST"], include_in_schema=False)

    @app.get(MODEL, openapi_extra={"security": auth}, summary="The served model and its schema")
    async def model_info(request: Request) -> Response:
        check_auth(request)
        check_loaded()
        model = service.model
        if model is None:  # pragma: no cover - check_loaded() answered 503 already
            raise ApiError(503, "not_ready", "the model is still loading")
        return Response(_encode(model.info()), media_type="application/json")

    @app.get(LIVE, summary="Liveness: the process answers")
    async def live() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get(READY, summary="Readiness: model loaded and warmed, not draining")
    async def ready(request: Request) -> Response:
        if service.ready:
            return Response(
                _encode({"status": "ready", "model_version": service.version}),
                media_type="application/json",
            )
        reason = "draining" if service.draining else "the model is still loading"
        raise ApiError(503, "not_ready", reason, headers={"Retry-After": RETRY_AFTER_S})

    if settings.bench_mode:

        async def noop(request: Request) -> Response:
            check_auth(request)
            await request.body()
            return Response(b'{"ok":true}', media_type="application/json")

        app.router.add_route(NOOP, noop, methods=["POST"], include_in_schema=False)

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(MalformedBody)
    async def on_malformed(request: Request, exc: MalformedBody) -> Response:
        return error_response(
            request, ApiError(400, "malformed_json", "the body is not valid JSON")
        )

    @app.exception_handler(InvalidInput)
    async def on_invalid(request: Request, exc: InvalidInput) -> Response:
        fields = [e.to_dict() for e in exc.errors]
        names = ", ".join(sorted({str(e.field) for e in exc.errors}))
        return error_response(
            request, ApiError(422, "invalid_input", f"invalid value for {names}", fields)
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {404: "no such route", 405: "method not allowed"}.get(
            exc.status_code, "request refused"
        )
        return error_response(
            request, ApiError(exc.status_code, code, message, headers=exc.headers)
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, ApiError(422, "invalid_input", "the request is invalid"))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
            spec["paths"] = {
                PREDICT: {
                    "post": {
                        "summary": 'Score one record, or a batch as {"records": [...]} '
                        'or {"columns": {...}}',
                        "description": (
                            "One body, three forms, told apart by the object's first key: one "
                            'record; `{"records": [...]}` (one object per row); or '
                            '`{"columns": {"x0": [...], ...}}` (one array per feature, all of '
                            "the same length; a nullable feature's column may be left out; a "
                            "number column may be packed: one base64 string of little-endian "
                            "float64 values, NaN for missing). Both batch forms hold 1 to "
                            "MAX_BATCH_ROWS rows and get the same answer, one prediction per "
                            "row in order. Columns with packed number columns are the fast "
                            "form for large batches."
                        ),
                        "operationId": "predict",
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": body_schema}},
                        },
                        "responses": {str(k): v for k, v in _responses(service.decoder).items()},
                        "security": auth,
                    }
                },
                **spec["paths"],
            }
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(components)
            schemas.update(_RESPONSE_SCHEMAS)
            spec["components"]["securitySchemes"] = {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            }
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(Guard, service=service)
    return app
