"""Service settings, read once from the environment (the Kubernetes manifests set them)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TRUE = {"1", "true", "yes", "on"}
MODEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting that makes the service refuse to start; the message says how to fix it."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false")


def _number(env: Mapping[str, str], name: str, default: float, cast: type, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a {cast.__name__}") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


# The model's name in the Open Inference Protocol's paths (/v2/models/<name>/infer): the project's.
DEFAULT_MODEL_NAME = __name__.split(".")[0].replace("_", "-")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    metrics_port: int = 9000
    model_dir: Path = Path("models")
    model_name: str = DEFAULT_MODEL_NAME
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # never logged
    auth_disabled: bool = False
    docs_enabled: bool = False
    max_batch_rows: int = 10_000
    # A 10,000-row batch of the default 100-column schema is ~27 MB of JSON with full float
    # precision; the default leaves room for that and refuses anything larger before parsing.
    max_body_bytes: int = 32 * 1024 * 1024
    max_concurrency: int = 64
    # Request bodies held in memory at once, in bytes: past it, 503 + Retry-After. A decoded
    # 10,000-record batch needs several times its body in memory, so the default (two
    # maximum-size bodies) keeps the pod well inside its 1 GiB limit (docs/serving.md has the
    # measurement); it must be at least MAX_BODY_BYTES, or no maximum-size body could pass.
    body_budget_bytes: int = 64 * 1024 * 1024
    # The server's own HTTP limits (serving/http_limits.py): an ingress may add its own.
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    # An idle connection (a new one, or keep-alive after a response) is closed after this.
    keep_alive_s: float = 5.0
    # From the end of the request body to the end of the answer (504 after it).
    request_timeout_s: float = 10.0
    # Seconds between SIGTERM (readiness → 503) and closing the listener. Kubernetes removes the
    # pod from its endpoints meanwhile; the preStop hook usually covers it, so 0 by default.
    drain_delay_s: float = 0.0
    graceful_timeout_s: float = 20.0
    # Bodies up to this size are decoded and scored inline on the event loop; larger ones (with
    # the default 0, every body) in the one worker thread. The loop and the scorer then each run
    # in long stretches with their code hot in the CPU caches (~2x the single-row throughput of
    # scoring inline on a busy machine), a slow body can still be answered 504, and a batch
    # never stalls the health checks (docs/serving.md has the measurement).
    offload_body_bytes: int = 0
    # Fraction of scored records logged as {"event": "prediction_sample", "features": ...,
    # "p_hat": ...} for the drift job (monitoring/drift.py). 0 = never: these lines carry input
    # values, unlike the per-request line, so switching them on is a data-handling decision.
    prediction_sample_rate: float = 0.0
    log_level: str = "INFO"
    bench_mode: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        keys = tuple(k.strip() for k in env.get("API_KEYS", "").split(",") if k.strip())
        settings = cls(
            host=env.get("HOST", cls.host),
            port=int(_number(env, "PORT", cls.port, int, 0)),
            metrics_port=int(_number(env, "METRICS_PORT", cls.metrics_port, int, 0)),
            model_dir=Path(env.get("MODEL_DIR", str(cls.model_dir))),
            model_name=env.get("MODEL_NAME", cls.model_name),
            api_keys=keys,
            auth_disabled=_bool(env, "AUTH_DISABLED", False),
            docs_enabled=_bool(env, "DOCS_ENABLED", False),
            max_batch_rows=int(_number(env, "MAX_BATCH_ROWS", cls.max_batch_rows, int, 1)),
            max_body_bytes=int(_number(env, "MAX_BODY_BYTES", cls.max_body_bytes, int, 1)),
            max_concurrency=int(_number(env, "MAX_CONCURRENCY", cls.max_concurrency, int, 1)),
            body_budget_bytes=int(_number(env, "BODY_BUDGET_BYTES", cls.body_budget_bytes, int, 1)),
            max_header_bytes=int(_number(env, "MAX_HEADER_BYTES", cls.max_header_bytes, int, 1024)),
            max_headers=int(_number(env, "MAX_HEADERS", cls.max_headers, int, 8)),
            header_timeout_s=_number(env, "HEADER_TIMEOUT_S", cls.header_timeout_s, float, 0.1),
            body_timeout_s=_number(env, "BODY_TIMEOUT_S", cls.body_timeout_s, float, 0.1),
            keep_alive_s=_number(env, "KEEP_ALIVE_S", cls.keep_alive_s, float, 0.1),
            request_timeout_s=_number(
                env, "REQUEST_TIMEOUT_S", cls.request_timeout_s, float, 0.001
            ),
            drain_delay_s=_number(env, "DRAIN_DELAY_S", cls.drain_delay_s, float, 0),
            graceful_timeout_s=_number(env, "GRACEFUL_TIMEOUT_S", cls.graceful_timeout_s, float, 0),
            offload_body_bytes=int(
                _number(env, "OFFLOAD_BODY_BYTES", cls.offload_body_bytes, int, 0)
            ),
            prediction_sample_rate=_number(
                env, "PREDICTION_SAMPLE_RATE", cls.prediction_sample_rate, float, 0
            ),
            log_level=env.get("LOG_LEVEL", cls.log_level).upper(),
            bench_mode=_bool(env, "BENCH_MODE", False),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if not MODEL_NAME_RE.fullmatch(self.model_name):
            raise ConfigError(
                f"MODEL_NAME={self.model_name!r} cannot be a URL path segment: use letters, "
                "digits, '.', '_' and '-' (it names the model in /v2/models/<name>)"
            )
        if self.body_budget_bytes < self.max_body_bytes:
            raise ConfigError(
                f"BODY_BUDGET_BYTES={self.body_budget_bytes} is below MAX_BODY_BYTES="
                f"{self.max_body_bytes}: no body of the maximum size could ever be served; raise "
                "BODY_BUDGET_BYTES or lower MAX_BODY_BYTES"
            )
        if self.prediction_sample_rate > 1:
            raise ConfigError("PREDICTION_SAMPLE_RATE must be between 0 and 1")
        if not self.api_keys and not self.auth_disabled:
            raise ConfigError(
                "no API keys: set API_KEYS=key1,key2 (comma-separated), or AUTH_DISABLED=true "
                "for local development only"
            )
