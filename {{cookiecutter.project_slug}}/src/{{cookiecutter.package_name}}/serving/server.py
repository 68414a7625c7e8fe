"""``<project> serve``: one uvicorn process (uvloop + httptools) with a graceful SIGTERM drain.

Why one process and uvicorn: docs/serving.md has the measurements. In short, one worker per
pod is what Kubernetes scales (HPA adds pods), ONNX Runtime is pinned to one thread, and a
single uvicorn process drains cleanly: on SIGTERM readiness turns 503 at once, the listener
closes after ``DRAIN_DELAY_S``, in-flight requests finish (up to ``GRACEFUL_TIMEOUT_S``), and
the process exits 0. Stock uvicorn re-raises the signal after its shutdown, which makes the
exit status 143; this subclass does not. Its 10 Hz tick also enforces the HTTP deadlines of
``http_limits.py`` (header, body and idle timeouts).

Start-up is all-or-nothing: settings, the feature schema and the model are loaded and warmed
before any port is opened, and a fault there exits non-zero with exactly one JSON log line that
names the cause (no traceback): Kubernetes shows it as the container's last words.

Settings come from the environment (see ``config.Settings``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import logging
import signal
import time
from collections.abc import Iterator
from types import FrameType

import uvicorn

from .app import create_app
from .config import ConfigError, Settings
from .guard import new_request_id, record_refusal
from .http_limits import HttpLimits, LimitedHttpToolsProtocol
from .logs import ACCESS, setup_logging
from .service import Service

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service):
        super().__init__(config)
        self.service = service
        self.exit_code = 0
        self._close_at: float | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._close_at is not None:
            # Already draining. A second Ctrl+C stops waiting for in-flight requests; a repeated
            # SIGTERM (e.g. sent to the process group and forwarded again by `uv run`) does not.
            if sig == signal.SIGINT:
                self.force_exit = True
                self.should_exit = True
            return
        self.service.begin_drain()
        self._close_at = time.monotonic() + self.service.settings.drain_delay_s
        if self.service.settings.drain_delay_s <= 0:
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._close_at is not None and time.monotonic() >= self._close_at:
            self.should_exit = True
        ACCESS.flush()  # the access lines of the last 0.1 s, in one write
        now = asyncio.get_running_loop().time()
        for connection in list(self.server_state.connections):
            enforce = getattr(connection, "enforce_deadline", None)
            if enforce is not None:
                enforce(now)
        return await super().on_tick(counter)

    def fatal(self) -> None:
        """The model cannot load: stop with a failing status so the orchestrator restarts us."""
        self.exit_code = 1
        self.should_exit = True


def http_protocol(settings: Settings, service: Service | None) -> type[LimitedHttpToolsProtocol]:
    limits = HttpLimits(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        idle_timeout_s=settings.keep_alive_s,
    )
    report = (
        functools.partial(record_refusal, service)
        if service is not None
        else LimitedHttpToolsProtocol.report
    )
    return LimitedHttpToolsProtocol.configured(limits, report, new_request_id)


def build_config(app: object, settings: Settings, service: Service | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=http_protocol(settings, service),
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # no X-Forwarded-* rewriting: nothing here uses the client address
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        timeout_keep_alive=max(1, round(settings.keep_alive_s)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="serve",
        description="Serve the model over HTTP. Configured by environment variables: HOST, PORT, "
        "METRICS_PORT, MODEL_DIR, API_KEYS or AUTH_DISABLED, MAX_BATCH_ROWS, MAX_BODY_BYTES, "
        "BODY_BUDGET_BYTES, MAX_CONCURRENCY, REQUEST_TIMEOUT_S, MAX_HEADER_BYTES, MAX_HEADERS, "
        "HEADER_TIMEOUT_S, BODY_TIMEOUT_S, KEEP_ALIVE_S, DRAIN_DELAY_S, GRACEFUL_TIMEOUT_S, "
        "DOCS_ENABLED, OFFLOAD_BODY_BYTES, PREDICTION_SAMPLE_RATE, LOG_LEVEL (docs/serving.md).",
    )
    parser.parse_args(argv or [])
    setup_logging()
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        log.error("refusing to start: %s", exc)
        return 2
    setup_logging(settings.log_level)
    if settings.auth_disabled:
        log.warning(
            "AUTH_DISABLED=true: ANYONE WHO CAN REACH %s:%d CAN CALL THE MODEL. Local development "
            "only; deployed environments must set API_KEYS.",
            settings.host,
            settings.port,
        )
    try:
        service = Service(settings)
        service.load()
    except Exception as exc:
        log.error("refusing to start: %s", _cause(exc))
        return 1
    # Everything loaded so far lives as long as the process: keep it out of the cyclic GC's
    # full collections (fewer latency spikes, a few % more throughput; measured).
    gc.collect()
    gc.freeze()
    app = create_app(service)
    try:
        service.metrics.start_server(settings.metrics_port, settings.host)
    except OSError as exc:
        log.error(
            "refusing to start: cannot serve metrics on %s:%d: %s",
            settings.host,
            settings.metrics_port,
            exc.strerror or exc,
        )
        return 1
    server = DrainingServer(build_config(app, settings, service), service)
    service.on_fatal = server.fatal
    log.info(
        "starting",
        extra={
            "host": settings.host,
            "port": settings.port,
            "metrics_port": settings.metrics_port,
            "model_dir": str(settings.model_dir),
        },
    )
    server.run()
    ACCESS.flush()
    if server.exit_code == 0 and not server.started:
        return 1  # e.g. the port was taken: uvicorn logged why
    log.info("stopped", extra={"exit_code": server.exit_code})
    return server.exit_code


def _cause(exc: Exception) -> str:
    """One sentence for the log: our errors already say what to do; others get their type."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, ValueError | RuntimeError) and type(exc).__module__.startswith(__package__):
        return text
    return f"{type(exc).__name__}: {text}"
