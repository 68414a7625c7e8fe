"""The outer ASGI layer: request id, limits, timeouts, metrics and the one access-log line.

Limits apply to the prediction routes (concurrency, timeout) and to every request body (size,
bytes in flight), so the health checks answer under overload; metrics are served on their own
port and thread. Each request gets an ``Exchange``, a small responder that holds its state, so
``Guard.__call__`` stays a straight line (the shape of Starlette's own middlewares).

Status codes tell the truth: a client that goes away is logged as 499 (nginx's "client closed
request"), never as a server error; a body that never finishes is 408 (``protocol.py`` answers
it); only a failure of ours is 500.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import errors
from .errors import ApiError
from .logs import ACCESS_LOGGER
from .protocol import BODY_TIMEOUT
from .service import Service

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)

PREDICT = "/v1/predict"
MODEL = "/v1/model"
LIVE = "/health/live"
READY = "/health/ready"
NOOP = "/_bench/noop"  # bench mode only: the same stack with no work, the bench's baseline
KNOWN_ROUTES = frozenset({PREDICT, MODEL, LIVE, READY, NOOP, "/docs", "/openapi.json"})
LIMITED_ROUTES = frozenset({PREDICT, NOOP})  # concurrency, timeout: never the health checks
KNOWN_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
REQUEST_ID_RE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")  # fullmatch: linear, bounded
CLIENT_CLOSED = 499  # nginx's status for "the client closed the connection first"
_MAX_LENGTH_DIGITS = 18  # a longer Content-Length is over any limit (and int() of it is slow)

_random_bits = random.Random().getrandbits  # noqa: S311  # nosec B311 - ids, not secrets


def new_request_id() -> str:
    # Correlation ids, not secrets: a PRNG is enough (4x cheaper than uuid4's urandom).
    return f"{_random_bits(128):032x}"


class BodyTooLarge(Exception):
    """A streamed body passed MAX_BODY_BYTES while it was being read (→ 413)."""


class OverBudget(Exception):
    """A streamed body took the bytes in flight past BODY_BUDGET_BYTES (→ 503)."""


class Guard:
    def __init__(self, app: ASGIApp, service: Service):
        self.app = app
        self.service = service
        self.settings = service.settings
        self.metrics = service.metrics
        self.active = 0  # prediction requests in flight
        self.body_bytes = 0  # request body bytes held by the requests in flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(self, scope, receive, send)
        try:
            await exchange.run()
        finally:
            exchange.finish()


def record(
    service: Service,
    route: str,
    method: str,
    status: int,
    seconds: float,
    request_id: str,
    reason: str = "",
) -> None:
    """The request's metrics and its one access-log line (never the payload)."""
    service.metrics.observe_request(route, method, status, seconds)
    extra: dict[str, Any] = {
        "request_id": request_id,
        "method": method,
        "route": route,
        "status": status,
        "latency_ms": round(seconds * 1e3, 3),
        "model_version": service.version,
    }
    if reason:
        extra["reason"] = reason
    access_log.info("request", extra=extra)


def record_refusal(
    service: Service, status: int, reason: str, request_id: str, seconds: float
) -> None:
    """``protocol.py`` refused a request before any application code saw it."""
    service.metrics.rejected.labels(reason).inc()
    record(service, "unparsed", "other", status, seconds, request_id, reason)


class Exchange:
    """One request through the guard: what it was, what it holds, how it was answered."""

    def __init__(self, guard: Guard, scope: Scope, receive: Receive, send: Send):
        self.guard, self.scope, self._receive, self._send = guard, scope, receive, send
        self.started = time.perf_counter()
        request_id = length = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value if REQUEST_ID_RE.fullmatch(value) else None
            elif key == b"content-length":
                length = value
        self.request_id = request_id.decode() if request_id else new_request_id()
        scope["request_id"] = self.request_id
        self.length = length
        path, method = scope["path"], scope["method"]
        self.route = path if path in KNOWN_ROUTES else "unmatched"
        self.method = method if method in KNOWN_METHODS else "other"
        self.limited = self.route in LIMITED_ROUTES
        self.status = 500
        self.reason = ""
        self.response_started = False
        self.counted = False
        self.reserved = 0  # body bytes this request holds in the guard's budget
        self.received = 0
        self.deadline: asyncio.Timeout | None = None

    # -- the request -------------------------------------------------------------------------
    async def run(self) -> None:
        guard, settings = self.guard, self.guard.settings
        guard.metrics.in_flight.inc()
        refusal = self.admit()
        if refusal is not None:
            await self.reject(refusal)
            return
        try:
            if self.limited:
                self.counted = True
                guard.active += 1
                # Until the body is in, the protocol's body timeout applies; from then on the
                # request has REQUEST_TIMEOUT_S (``receive`` moves the deadline).
                budget = settings.body_timeout_s + settings.request_timeout_s
                async with asyncio.timeout(budget) as self.deadline:
                    await guard.app(self.scope, self.receive, self.send)
            else:
                await guard.app(self.scope, self.receive, self.send)
        except TimeoutError:
            if self.deadline is None or not self.deadline.expired():
                raise
            guard.metrics.rejected.labels("timeout").inc()
            await self.reject(errors.timed_out(settings.request_timeout_s), "timeout")
        except BodyTooLarge:
            await self.reject(errors.body_too_large(settings.max_body_bytes), "body_too_large")
        except OverBudget:
            await self.reject(self._over_budget(), "body_budget")
        except ClientDisconnect:
            if self.scope.get(BODY_TIMEOUT):  # protocol.py has answered 408 already
                self.status, self.reason = 408, "body_timeout"
                guard.metrics.rejected.labels("body_timeout").inc()
            else:
                self.status, self.reason = CLIENT_CLOSED, "client_closed"
        except Exception:
            log.exception("unhandled error", extra={"request_id": self.request_id})
            await self.reject(errors.internal_error())

    def admit(self) -> ApiError | None:
        """Refuse before reading anything, or reserve the body's bytes in the budget."""
        guard, settings = self.guard, self.guard.settings
        if self.limited and guard.active >= settings.max_concurrency:
            guard.metrics.rejected.labels("overload").inc()
            return errors.overloaded("too many requests in flight; retry shortly")
        if self.length is None:
            return None  # no body, or a chunked one: counted while it is read
        if not self.length.isdigit():  # bytes.isdigit(): ASCII digits only
            return ApiError(400, "bad_request", "invalid Content-Length header")
        length = (
            int(self.length)
            if len(self.length) <= _MAX_LENGTH_DIGITS
            else settings.max_body_bytes + 1
        )
        if length > settings.max_body_bytes:
            guard.metrics.rejected.labels("body_too_large").inc()
            return errors.body_too_large(settings.max_body_bytes)
        if guard.body_bytes and guard.body_bytes + length > settings.body_budget_bytes:
            guard.metrics.rejected.labels("body_budget").inc()
            return self._over_budget()
        self.reserved = length
        guard.body_bytes += length
        return None

    def _over_budget(self) -> ApiError:
        limit = self.guard.settings.body_budget_bytes
        message = f"request bodies in flight are over {limit} bytes; retry shortly"
        error = errors.overloaded(message)
        error.headers["Connection"] = "close"  # the body was not read
        return error

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            return message
        chunk = len(message.get("body", b""))
        self.received += chunk
        guard, settings = self.guard, self.guard.settings
        if self.received > settings.max_body_bytes:
            guard.metrics.rejected.labels("body_too_large").inc()
            raise BodyTooLarge
        if self.length is None and chunk:  # a chunked body reserves its bytes as they come
            self.reserved += chunk
            guard.body_bytes += chunk
            if guard.body_bytes > settings.body_budget_bytes and guard.body_bytes > self.reserved:
                guard.metrics.rejected.labels("body_budget").inc()
                raise OverBudget
        if not message.get("more_body", False) and self.deadline is not None:
            self.deadline.reschedule(asyncio.get_running_loop().time() + settings.request_timeout_s)
        return message

    # -- the answer --------------------------------------------------------------------------
    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.response_started = True
            self.status = message["status"]
            extra: list[tuple[bytes, bytes]] = [(b"x-request-id", self.request_id.encode())]
            if self.guard.service.draining:  # keep-alive clients reconnect to another pod
                extra.append((b"connection", b"close"))
            message["headers"] = [*message.get("headers", ()), *extra]
        await self._send(message)

    async def reject(self, error: ApiError, reason: str = "") -> None:
        """Answer ``error`` unless a response has begun (then only the log says so)."""
        self.reason = reason or self.reason
        if self.response_started:
            return
        body = error.body(self.request_id)
        await self.send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": error.asgi_headers(body),
            }
        )
        await self._send({"type": "http.response.body", "body": body})

    def finish(self) -> None:
        guard = self.guard
        if self.counted:
            guard.active -= 1
        guard.body_bytes -= self.reserved
        guard.metrics.in_flight.dec()
        elapsed = time.perf_counter() - self.started
        record(
            guard.service,
            self.route,
            self.method,
            self.status,
            elapsed,
            self.request_id,
            self.reason,
        )
