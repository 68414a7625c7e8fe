"""The real server process on 127.0.0.1, for the integration tests: start, stop, raw sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from {{ cookiecutter.package_name }}.bench import running, sample_records, wait_ready
from {{ cookiecutter.package_name }}.features import FeatureSchema

PACKAGE = "{{ cookiecutter.package_name }}"
KEY = "integration-key"
REPO = Path(__file__).resolve().parents[1]
HEADERS = {"X-API-Key": KEY, "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    metrics_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


def request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        url, data=body, headers=headers or {}, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310 - 127.0.0.1
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def env_for(model_dir: Path, port: int, metrics_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"API_KEYS", "AUTH_DISABLED"}}
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        METRICS_PORT=str(metrics_port),
        MODEL_DIR=str(model_dir),
        API_KEYS=KEY,
        **extra,
    )
    return env


@contextmanager
def server(model_dir: Path, tmp_path: Path, **extra: str) -> Iterator[Server]:
    """The real service on free ports, ready; stopped with SIGTERM (killed if it hangs)."""
    port, metrics_port = free_port(), free_port()
    log = tmp_path / f"server-{port}.log"
    command = [sys.executable, "-m", f"{PACKAGE}.cli", "serve"]
    with running(command, env_for(model_dir, port, metrics_port, **extra), log) as proc:
        srv = Server(proc, port, metrics_port, log)
        wait_ready(f"{srv.url}/health/ready", proc, log, timeout=60)
        yield srv


def partial_request(port: int, body: bytes, sent: int, path: str = "/v1/predict") -> socket.socket:
    """Send the headers and only ``sent`` bytes of the body: the request stays in flight."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {KEY}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock.sendall(head + body[:sent])
    return sock


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def sample_row(model_dir: Path, seed: int = 11) -> bytes:
    """One valid record of the served model's schema, as a request body."""
    schema = FeatureSchema.load(model_dir / "features.json")
    return json.dumps(sample_records(schema, 1, seed=seed)[0]).encode()


def read_head(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """Status and headers of one response on a keep-alive connection (its body is left)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), {k.lower(): v for k, v in headers.items()}


def closed_within(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes ``sock``; fails if it is still open."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        raise AssertionError(f"still open after {seconds} s (got {data[:200]!r})") from None
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return data


def cpu_wait_s(schedstat: str) -> float:
    """Seconds a thread has waited on a run queue for a CPU so far (Linux ``schedstat``; 0.0
    where the kernel does not keep it)."""
    try:
        return int(Path(schedstat).read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class Probe:
    """Polls ``url`` from a thread like a kubelet (a new connection each time) and keeps the
    latency of every answer; ``worst`` is the slowest.

    With the server's ``pid`` it also keeps each answer's ``own_latencies``: the latency less the
    time the server's event loop and this probe's thread spent waiting for a CPU while it was
    asked. On a machine running other jobs beside the suite that wait is theirs, not the
    server's: an attack that stalls the server still shows in full."""

    def __init__(self, url: str, every: float = 0.02, pid: int | None = None):
        self.url, self.every = url, every
        self.latencies: list[float] = []
        self.own_latencies: list[float] = []
        self.failures: list[str] = []
        self._server_stat = f"/proc/{pid}/schedstat" if pid is not None else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _waited(self, own_stat: str) -> float:
        if self._server_stat is None:
            return 0.0
        return cpu_wait_s(self._server_stat) + cpu_wait_s(own_stat)

    def _run(self) -> None:
        own_stat = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        while not self._stop.is_set():
            waited = self._waited(own_stat)
            started = time.perf_counter()
            try:
                status = request(self.url)[0]
            except OSError as exc:
                self.failures.append(repr(exc))
            else:
                if status != 200:
                    self.failures.append(f"status {status}")
            latency = time.perf_counter() - started
            self.latencies.append(latency)
            self.own_latencies.append(max(0.0, latency - (self._waited(own_stat) - waited)))
            self._stop.wait(self.every)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def worst(self) -> float:
        return max(self.latencies)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/<pid>/status")
