"""JSON logs: one object per line on stdout, the request line without any payload.

Every line has ``ts``, ``level``, ``logger`` and ``msg``, then its own fields. The per-request
access line is the hot one: through ``logging`` it costs ~15 us (a record, a lock, a format, a
write and a flush per line), a tenth of a one-row prediction. So once ``setup_logging`` has put
the JSON handler on stdout, ``ACCESS`` encodes the line itself and writes lines in batches
(``flush`` runs on the server's 10 Hz tick and at exit): the same bytes, at most 0.1 s later.
Without ``setup_logging`` (tests capturing logs, the app embedded elsewhere) the line goes through
``logging`` like every other line.
"""

from __future__ import annotations

import atexit
import logging
import sys
import time
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's terminal colours
}

ACCESS_LOGGER = __name__.split(".")[0] + ".access"
SAMPLE_LOGGER = __name__.split(".")[0] + ".samples"
SAMPLE_EVENT = "prediction_sample"  # what monitoring/drift.py reads back


_second: list[Any] = [None, ""]


def timestamp(now: float) -> str:
    """``2026-01-31T12:00:00.123Z`` (UTC, milliseconds); the second is formatted once."""
    second = int(now)
    if second != _second[0]:
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_second[1]}.{int((now - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            # Tracebacks go to the log (never to a response body).
            entry["exc"] = self.formatException(record.exc_info)
        return _encode(entry).decode()


class AccessLine(msgspec.Struct, omit_defaults=True):
    """The one line per request: the keys every line has, in the same order, then its own."""

    ts: str
    level: str
    logger: str
    msg: str
    request_id: str
    method: str
    route: str
    status: int
    latency_ms: float
    model_version: str
    reason: str = ""  # a refusal's or an abort's (left out when there is none)


class AccessLog:
    """The access line of each request, batched when the JSON handler on stdout is ours."""

    def __init__(self) -> None:
        self.logger = logging.getLogger(ACCESS_LOGGER)
        self.handler: logging.StreamHandler | None = None
        self._lines: list[bytes] = []

    def write_to(self, handler: logging.StreamHandler | None) -> None:
        self.flush()
        self.handler = handler

    def write(
        self,
        request_id: str,
        method: str,
        route: str,
        status: int,
        latency_ms: float,
        model_version: str,
        reason: str = "",
    ) -> None:
        if self.handler is None:
            fields = {
                "request_id": request_id,
                "method": method,
                "route": route,
                "status": status,
                "latency_ms": latency_ms,
                "model_version": model_version,
            }
            self.logger.info("request", extra={**fields, "reason": reason} if reason else fields)
        elif self.logger.isEnabledFor(logging.INFO):
            line = AccessLine(
                timestamp(time.time()),
                "info",
                ACCESS_LOGGER,
                "request",
                request_id,
                method,
                route,
                status,
                latency_ms,
                model_version,
                reason,
            )
            self._lines.append(_encode(line))
            if len(self._lines) >= 256:
                self.flush()

    def flush(self) -> None:
        if not self._lines or self.handler is None:
            return
        lines, self._lines = self._lines, []
        text = (b"\n".join(lines) + b"\n").decode()
        with self.handler.lock:  # never inside another thread's line
            self.handler.stream.write(text)
            self.handler.stream.flush()


ACCESS = AccessLog()


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # No caller lookup, thread or process names per record: no line carries them.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    ACCESS.write_to(handler)
    atexit.register(ACCESS.flush)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our access line replaces it
