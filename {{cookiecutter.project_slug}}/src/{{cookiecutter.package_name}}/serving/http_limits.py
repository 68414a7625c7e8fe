"""HTTP/1.1 limits enforced by the server itself: uvicorn's httptools protocol, subclassed.

Stock uvicorn reads request headers without a size, count or time limit, and closes only
connections that are idle *after* a response. So a client that opens a connection and sends
nothing, or sends its headers a byte a second, holds the connection forever, and a 100 MB header
stalls the event loop while it is being joined. The pod must not rely on an ingress for this:

* headers (request line included) over ``max_header_bytes``, or more than ``max_headers``
  fields: 431, connection closed;
* headers not complete ``header_timeout_s`` after the request's first byte: 408, closed;
* a body not complete ``body_timeout_s`` after its headers: 408 if no response has started
  (the application sees a disconnect and the guard logs the 408), closed;
* a connection that sends nothing for ``idle_timeout_s``, new or kept alive after a response:
  closed (in place of uvicorn's keep-alive timer, which it makes and cancels per response);
* a connection closed while its request is still arriving (a refusal before the body is read:
  413, 408, 431) lingers, as nginx's ``lingering_close``: the answer is followed by a FIN, and
  what the client still sends is read and discarded for up to ``linger_s``, then it is closed.
  Closing on unread bytes makes the kernel answer them with a reset, and the client, still
  sending, fails on the reset before it reads its answer.

A whole response of known length can also be written in one go (``write_response``): the guard
answers its own routes and its refusals so.

The deadlines are checked by the server's 10 Hz tick (``server.DrainingServer``), not by a timer
per request: a request costs a clock read, and a deadline fires within 0.1 s of its time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .errors import ApiError

# Set in the ASGI scope when the body timed out: the guard logs and counts the request as 408.
BODY_TIMEOUT = "body_timeout"
# Set in the ASGI scope by this protocol: the request's ``send`` is a uvicorn httptools cycle's,
# so ``write_response`` may answer it in one write (any other server gets ASGI messages).
WHOLE_RESPONSE = "whole_response"
# Set in the ASGI scope by this protocol: the event loop serving the request, so the guard and the
# batcher need not look it up (on Python 3.11 each asyncio.get_running_loop() is a getpid()).
EVENT_LOOP = "event_loop"

# What the connection is waiting for; each phase but APP has a deadline.
IDLE, HEADERS, BODY, APP, LINGER = "idle", "headers", "body", "app", "linger"


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    idle_timeout_s: float = 5.0
    linger_s: float = 2.0


# (status, reason, request id, seconds since the request began) for each refusal made here.
Report = Callable[[int, str, str, float], None]


class _TooManyHeaders(Exception):
    """Raised from a parser callback to stop parsing (httptools wraps it)."""


class _LingeringTransport:
    """The connection's transport as uvicorn and the guard see it: its ``close`` is the
    protocol's, which may linger first. Writes go straight to the real transport."""

    def __init__(self, transport: asyncio.Transport, protocol: LimitedHttpToolsProtocol) -> None:
        self.transport = transport
        self.write = transport.write
        self.close = protocol.close_connection
        self._protocol = protocol

    def is_closing(self) -> bool:
        return self._protocol._phase == LINGER or self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header limits and per-phase deadlines."""

    limits: HttpLimits = HttpLimits()
    report: Report = staticmethod(lambda status, reason, request_id, seconds: None)
    new_request_id: Callable[[], str] = staticmethod(lambda: "")

    @classmethod
    def configured(
        cls, limits: HttpLimits, report: Report, new_request_id: Callable[[], str]
    ) -> type[LimitedHttpToolsProtocol]:
        """A subclass bound to these limits: uvicorn instantiates the protocol class itself."""
        attributes = {
            "limits": limits,
            "report": staticmethod(report),
            "new_request_id": staticmethod(new_request_id),
        }
        return type("ConfiguredHttpToolsProtocol", (cls,), attributes)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = IDLE
        self._deadline = 0.0
        self._began = 0.0
        self._header_bytes = 0
        self._header_count = 0
        self._refusing: tuple[int, str, str] | None = None

    # -- phases ----------------------------------------------------------------------------
    def _enter(self, phase: str, timeout: float) -> None:
        self._phase = phase
        self._deadline = self.loop.time() + timeout

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._enter(IDLE, self.limits.idle_timeout_s)

    def close_connection(self) -> None:
        """Close, or linger while the client may still be sending the request (see above)."""
        transport = self.transport.transport  # type: ignore[attr-defined]
        if (
            self._phase in (HEADERS, BODY)
            and not transport.is_closing()
            and transport.can_write_eof()
        ):
            self._enter(LINGER, self.limits.linger_s)  # LINGER: is_closing() is true from here
            self.flow.resume_reading()  # reading may be paused on a large unread body
            transport.write_eof()  # after the answer: the client reads it, then the end
        else:
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self._phase == LINGER:
            return  # the rest of a refused request: read and dropped
        if self._phase in (IDLE, APP):  # the first bytes of a request
            self._enter(HEADERS, self.limits.header_timeout_s)
            self._began = self.loop.time()
            self._header_bytes = 0
        if self._phase == HEADERS:
            self._header_bytes += len(data)
        super().data_received(data)
        if (
            self._phase == HEADERS
            and self._header_bytes > self.limits.max_header_bytes
            and not self.transport.is_closing()
        ):
            self.refuse(431, "headers_too_large", "request headers are over the size limit")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refusing = (431, "too_many_headers", "request has too many header fields")
            raise _TooManyHeaders
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._enter(BODY, self.limits.body_timeout_s)
        scope = self.scope
        scope[WHOLE_RESPONSE] = True  # type: ignore[literal-required]
        scope[EVENT_LOOP] = self.loop  # type: ignore[literal-required]
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = APP  # the application's time from here on: the guard's timeout

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive wait on the tick's IDLE deadline instead of a timer
        made and cancelled per response (``loop.call_later`` and its cancel: 1,600-3,600
        instructions a request by callgrind, under 1 % of a prediction)."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # the next pipelined request starts now
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._phase == APP:  # not while the next request is already arriving
            self._enter(IDLE, self.limits.idle_timeout_s)

    def send_400_response(self, msg: str) -> None:
        if self._refusing is not None:  # the parser stopped because a callback refused
            self.refuse(*self._refusing)
        else:
            super().send_400_response(msg)

    # -- refusals --------------------------------------------------------------------------
    def enforce_deadline(self, now: float) -> None:
        """Called by the server's tick: act on the current phase's deadline once it passed."""
        if self._phase == APP or now < self._deadline:
            return
        if self._phase == LINGER:
            self.transport.transport.close()  # type: ignore[attr-defined]
            return
        if self.transport.is_closing():
            return
        if self._phase == IDLE:
            self.transport.close()  # nothing was asked, so nothing is answered
        elif self._phase == HEADERS:
            self.refuse(408, "header_timeout", "request headers were not received in time")
        else:
            cycle = self.cycle
            if cycle is not None and not cycle.response_started:
                cycle.scope[BODY_TIMEOUT] = True  # type: ignore[literal-required]
                cycle.disconnected = True  # the application's receive() now says so
                cycle.message_event.set()
                request_id = cycle.scope.get("request_id")  # the guard's id for this request
                self.refuse(
                    408, "body_timeout", "request body was not received in time", request_id
                )
            else:
                self.transport.close()

    def refuse(self, status: int, reason: str, message: str, request_id: str | None = None) -> None:
        """Answer ``status`` with the error envelope and close the connection.

        Refusals of a request the guard has seen (it gave ``request_id``) are reported by the
        guard; the others (headers never complete or too large) are reported here.
        """
        report = request_id is None
        request_id = request_id or self.new_request_id()
        error = ApiError(status, reason, message, headers={"Connection": "close"})
        body = error.body(request_id)
        head = [STATUS_LINE[status]]
        for name, value in [*error.asgi_headers(body), (b"x-request-id", request_id.encode())]:
            head += [name, b": ", value, b"\r\n"]
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()  # lingers: the request is still arriving
        if report:
            self.report(status, reason, request_id, self.loop.time() - self._began)


def write_response(
    send: Callable[..., Any],
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    close: bool,
) -> bool:
    """Answer a whole response of known length in one transport write, as uvicorn's ``send``
    would answer its two messages, without their per-message work: the head and the body in two
    writes, and two regular expressions per header (measured: docs/serving.md). Only for the
    guard's own answers, whose header names are constants and whose values are lengths, checked
    request ids and constants. ``send`` must come with a scope this protocol marked
    ``WHOLE_RESPONSE``; False: answer through ``send`` instead (the response has begun, a HEAD
    request, or the client is not reading: ``send`` waits for it)."""
    cycle = send.__self__  # type: ignore[attr-defined]  # uvicorn's RequestResponseCycle
    if cycle.response_started or cycle.flow.write_paused or cycle.scope["method"] == "HEAD":
        return False
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    if cycle.disconnected:
        return True  # nobody to answer, as uvicorn's send
    keep_alive = cycle.keep_alive = cycle.keep_alive and not close
    head = [STATUS_LINE[status]]
    for name, value in [*cycle.default_headers, *headers]:
        head += (name, b": ", value, b"\r\n")
    if not keep_alive:
        head.append(b"connection: close\r\n")
    head += (b"content-length: %d\r\n\r\n" % len(body), body)
    cycle.transport.write(b"".join(head))
    cycle.response_complete = True
    cycle.message_event.set()
    if not keep_alive:
        cycle.transport.close()
    cycle.on_response()
    return True
