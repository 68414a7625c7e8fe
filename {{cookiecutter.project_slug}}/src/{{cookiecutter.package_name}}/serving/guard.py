"""The outer ASGI layer: request id, limits, timeouts, metrics and the one access-log line.

Every request passes here. Limits apply to the prediction routes (concurrency, timeout) and to
every request body (size, bytes in flight), so the health checks answer under overload; metrics
are served on their own port and thread. Each request gets an ``Exchange``, a small responder that
holds its state, so ``Guard.__call__`` stays a straight line (the shape of Starlette's own
middlewares).

The prediction routes are answered here too (``hot_routes``): a one-row prediction is ~50 us of
model and decoder work, and FastAPI's routing, request and response objects would add as much
again (docs/serving.md has the profile). Everything else (the model info, health, docs, 404/405)
goes on to the FastAPI application.

Status codes tell the truth: a client that goes away is logged as 499 (nginx's "client closed
request"), never as a server error; a body that never finishes is 408 (``http_limits.py`` answers
it); only a failure of ours is 500.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import errors
from .errors import ApiError, is_protocol_path
from .http_limits import BODY_TIMEOUT, EVENT_LOOP, WHOLE_RESPONSE, write_response
from .logs import ACCESS
from .service import Service

log = logging.getLogger(__name__)

PREDICT = "/v1/predict"
MODEL = "/v1/model"
LIVE = "/health/live"
READY = "/health/ready"
NOOP = "/_bench/noop"  # bench mode only: the same stack with no work, the bench's baseline
KNOWN_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
REQUEST_ID_RE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")  # fullmatch: linear, bounded
CLIENT_CLOSED = 499  # nginx's status for "the client closed the connection first"
_MAX_LENGTH_DIGITS = 18  # a longer Content-Length is over any limit (and int() of it is slow)
JSON_HEADERS = [(b"content-type", b"application/json")]
# Error headers the guard writes itself: errors.py's constructors set them, to constants. Any
# other (a framework exception's, say) goes through uvicorn's send, which checks each header.
OWN_ERROR_HEADERS = frozenset({"Allow", "Connection", "Retry-After", "WWW-Authenticate"})

_random_bits = random.Random().getrandbits  # noqa: S311  # nosec B311 - ids, not secrets

Handler = Callable[["Exchange"], Awaitable[None]]


def new_request_id() -> str:
    # Correlation ids, not secrets: a PRNG is enough (4x cheaper than uuid4's urandom).
    return f"{_random_bits(128):032x}"


class BodyTooLarge(Exception):
    """A streamed body passed MAX_BODY_BYTES while it was being read (→ 413)."""


class OverBudget(Exception):
    """A streamed body took the bytes in flight past BODY_BUDGET_BYTES (→ 503)."""


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
    ACCESS.write(
        request_id, method, route, status, round(seconds * 1e3, 3), service.version, reason
    )


def record_refusal(
    service: Service, status: int, reason: str, request_id: str, seconds: float
) -> None:
    """``http_limits.py`` refused a request before any application code saw it."""
    service.metrics.rejected.labels(reason).inc()
    record(service, "unparsed", "other", status, seconds, request_id, reason)


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        service: Service,
        hot_routes: dict[str, Handler] | None = None,
        known_routes: frozenset[str] = frozenset(),
        resolve: Callable[[str], Handler | None] | None = None,
    ):
        """``hot_routes`` are answered here and limited (concurrency, timeout: the prediction
        routes, never the health checks); ``known_routes`` are the paths metrics and logs name
        (any other path is "unmatched", so a scan of random URLs cannot grow the series)."""
        self.app = app
        self.service = service
        self.settings = service.settings
        self.metrics = service.metrics
        self.hot_routes = hot_routes or {}
        self.known_routes = known_routes | set(self.hot_routes)
        self.resolve = resolve  # a hot route whose path is known only at run time
        self.in_flight = 0
        self.active = 0  # prediction requests in flight
        self.body_bytes = 0  # request body bytes held by the requests in flight
        self.metrics.in_flight.set_function(lambda: self.in_flight)
        # Deadlines of the limited requests, checked by one timer while any is in flight (one
        # TimerHandle per request, as asyncio.timeout makes, costs ~15 us of a ~100 us request).
        self.watched: set[Exchange] = set()
        self.sweep_s = min(0.05, self.settings.request_timeout_s / 4)
        self._sweeping = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(self, scope, receive, send)
        try:
            await exchange.run()
        finally:
            exchange.finish()

    def watch(self, exchange: Exchange) -> None:
        self.watched.add(exchange)
        if not self._sweeping:
            self._sweeping = True
            asyncio.get_running_loop().call_later(self.sweep_s, self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        for exchange in [e for e in self.watched if now >= e.deadline]:
            exchange.expire()
        if self.watched:
            asyncio.get_running_loop().call_later(self.sweep_s, self._sweep)
        else:
            self._sweeping = False


class Exchange:
    """One request through the guard: what it was, what it holds, how it was answered."""

    def __init__(self, guard: Guard, scope: Scope, receive: Receive, send: Send):
        self.guard, self.scope, self._receive, self._send = guard, scope, receive, send
        self.started = time.perf_counter()
        request_id = length = None
        self.api_key: bytes | None = None
        self.header_length: bytes | None = None  # the Open Inference Protocol's JSON header
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value if REQUEST_ID_RE.fullmatch(value) else None
            elif key == b"content-length":
                length = value
            elif key == b"x-api-key":
                self.api_key = value
            elif key == b"inference-header-content-length":
                self.header_length = value
        self.request_id = request_id.decode() if request_id else new_request_id()
        scope["request_id"] = self.request_id
        self.length = length
        self.loop: asyncio.AbstractEventLoop | None = scope.get(EVENT_LOOP)  # None: look it up
        path, method = scope["path"], scope["method"]
        self.route = path if path in guard.known_routes else "unmatched"
        self.method = method if method in KNOWN_METHODS else "other"
        self.handler = guard.hot_routes.get(path)
        if self.handler is None and guard.resolve is not None:
            self.handler = guard.resolve(path)
            if self.handler is not None:
                self.route = path  # one version: a bounded label
        self.limited = self.handler is not None
        self.protocol = is_protocol_path(path)
        self.status = 500
        self.reason = ""
        self.response_started = False
        self.counted = False
        self.reserved = 0  # body bytes this request holds in the guard's budget
        self.received = 0
        self.deadline = 0.0
        self.expired = False
        self.task: asyncio.Task | None = None

    # -- the request -------------------------------------------------------------------------
    async def run(self) -> None:
        guard, settings = self.guard, self.guard.settings
        guard.in_flight += 1
        refusal = self.admit()
        if refusal is not None:
            await self.reject(refusal)
            return
        handler = self.handler
        try:
            if self.limited:
                self.counted = True
                guard.active += 1
                # Until the body is in, the protocol's body timeout applies; from then on the
                # request has REQUEST_TIMEOUT_S (``receive`` moves the deadline). Deadlines are
                # on time.monotonic, not loop.time(), and the loop comes with the scope: on
                # Python 3.11 each look-up of the running loop is a getpid() system call (a
                # request made four).
                self.deadline = (
                    time.monotonic() + settings.body_timeout_s + settings.request_timeout_s
                )
                self.task = asyncio.current_task(self.loop)
                guard.watch(self)
            if handler is not None:
                await handler(self)
            else:
                await guard.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if not self.expired:
                raise
            self.task.uncancel()  # type: ignore[union-attr]  # ours, and handled here
            guard.metrics.rejected.labels("timeout").inc()
            await self.reject(errors.timed_out(settings.request_timeout_s), "timeout")
        except BodyTooLarge:
            await self.reject(errors.body_too_large(settings.max_body_bytes), "body_too_large")
        except OverBudget:
            await self.reject(self._over_budget(), "body_budget")
        except ClientDisconnect:
            if self.scope.get(BODY_TIMEOUT):  # http_limits.py has answered 408 already
                self.status, self.reason = 408, "body_timeout"
                guard.metrics.rejected.labels("body_timeout").inc()
            else:
                self.status, self.reason = CLIENT_CLOSED, "client_closed"
        except Exception as exc:
            error = errors.as_api_error(exc)
            if error is None:
                log.exception("unhandled error", extra={"request_id": self.request_id})
                error = errors.internal_error()
            await self.reject(error)

    def require_key_and_model(self) -> None:
        """What a prediction route needs first: a valid API key, then a loaded model."""
        service = self.guard.service
        if not service.authorised(self.api_key):
            raise errors.unauthorised()
        if service.model is None:
            raise errors.not_ready()

    def expire(self) -> None:
        """Past the deadline: stop waiting for the work (``run`` answers 504)."""
        self.guard.watched.discard(self)
        if self.task is not None and not self.response_started:
            self.expired = True
            self.task.cancel()

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
        too_long = len(self.length) > _MAX_LENGTH_DIGITS
        length = settings.max_body_bytes + 1 if too_long else int(self.length)
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
        if self.counted and not message.get("more_body", False):
            self.deadline = time.monotonic() + settings.request_timeout_s
        return message

    async def body(self) -> bytes:
        """The whole request body (for the hot routes, which read it themselves)."""
        chunks = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

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

    async def respond(
        self,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]] = JSON_HEADERS,
        close: bool = False,
    ) -> None:
        """Answer ``body`` whole; ``close``: and close the connection after it."""
        draining = self.guard.service.draining  # keep-alive clients reconnect to another pod
        if self.scope.get(WHOLE_RESPONSE):
            extra = [*headers, (b"x-request-id", self.request_id.encode())]
            if write_response(self._send, status, extra, body, close=close or draining):
                self.response_started = True
                self.status = status
                return
        extra = [(b"content-length", str(len(body)).encode())]
        if close and not draining:  # send() says so while draining
            extra.append((b"connection", b"close"))
        await self.send(
            {"type": "http.response.start", "status": status, "headers": [*headers, *extra]}
        )
        await self._send({"type": "http.response.body", "body": body})

    async def reject(self, error: ApiError, reason: str = "") -> None:
        """Answer ``error`` unless a response has begun (then only the log says so): in one
        write, as ``respond``, when its headers are the guard's own (a flood of 401s or 503s
        is then as cheap to answer as it can be)."""
        self.reason = reason or self.reason
        if self.response_started:
            return
        body = error.body(self.request_id, self.protocol)
        if error.headers.keys() <= OWN_ERROR_HEADERS:
            headers = [*JSON_HEADERS, *error.header_pairs()]
            close = (b"connection", b"close") in headers
            if close:
                headers.remove((b"connection", b"close"))  # respond() writes it
            await self.respond(error.status, body, headers, close=close)
            return
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
            guard.watched.discard(self)
        guard.in_flight -= 1
        guard.body_bytes -= self.reserved
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
