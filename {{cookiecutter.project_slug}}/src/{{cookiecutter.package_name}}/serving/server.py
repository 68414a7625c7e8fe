"""``<project> serve``: one uvicorn process (uvloop + httptools) with a graceful SIGTERM drain.

Why one process and uvicorn: docs/serving.md has the measurements. In short, one worker per
pod is what Kubernetes scales (HPA adds pods), ONNX Runtime is pinned to one thread, and a
single uvicorn process drains cleanly: on SIGTERM readiness turns 503 at once, the listener
closes after ``DRAIN_DELAY_S``, in-flight requests finish (up to ``GRACEFUL_TIMEOUT_S``), and
the process exits 0. Stock uvicorn re-raises the signal after its shutdown, which makes the
exit status 143; this subclass does not.

Settings come from the environment (see ``config.Settings``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import time
from collections.abc import Generator
from types import FrameType

import uvicorn

from .app import Service, create_app
from .config import ConfigError, Settings
from .logs import setup_logging
from .model import ModelError

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service):
        super().__init__(config)
        self.service = service
        self.exit_code = 0
        self._close_at: float | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
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
        return await super().on_tick(counter)

    def fatal(self) -> None:
        """The model cannot load: stop with a failing status so the orchestrator restarts us."""
        self.exit_code = 1
        self.should_exit = True


def build_config(app: object, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        timeout_keep_alive=5,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="serve",
        description="Serve the model over HTTP. Configured by environment variables: HOST, PORT, "
        "METRICS_PORT, MODEL_DIR, API_KEYS or AUTH_DISABLED, MAX_BATCH_ROWS, MAX_BODY_BYTES, "
        "MAX_CONCURRENCY, REQUEST_TIMEOUT_S, DRAIN_DELAY_S, GRACEFUL_TIMEOUT_S, DOCS_ENABLED, "
        "OFFLOAD_BODY_BYTES, PREDICTION_SAMPLE_RATE, LOG_LEVEL (docs/serving.md).",
    )
    parser.parse_args(argv or [])
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        setup_logging()
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
    except (ModelError, ValueError) as exc:
        log.error("refusing to start: %s", exc)
        return 1
    app = create_app(service)
    try:
        service.metrics.start_server(settings.metrics_port, settings.host)
    except OSError as exc:
        log.error("cannot serve metrics on %s:%d: %s", settings.host, settings.metrics_port, exc)
        return 1
    server = DrainingServer(build_config(app, settings), service)
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
    if server.exit_code == 0 and not server.started:
        return 1  # e.g. the port was taken: uvicorn logged why
    log.info("stopped", extra={"exit_code": server.exit_code})
    return server.exit_code
