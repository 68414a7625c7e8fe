"""The real server process on 127.0.0.1: readiness, SIGTERM drain, overload, timeout, locust."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.bench import sample_records, wait_ready
from {{ cookiecutter.package_name }}.features import FeatureSchema

pytestmark = pytest.mark.integration

KEY = "integration-key"
REPO = Path(__file__).resolve().parents[2]


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
    port, metrics_port = free_port(), free_port()
    log = tmp_path / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "{{ cookiecutter.package_name }}.cli", "serve"],
            env=env_for(model_dir, port, metrics_port, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    srv = Server(proc, port, metrics_port, log)
    try:
        wait_ready(f"{srv.url}/health/ready", proc, log, timeout=60)
        yield srv
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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


@pytest.fixture(scope="module")
def row(served_model_dir: Path) -> bytes:
    schema = FeatureSchema.load(served_model_dir / "features.json")
    return json.dumps(sample_records(schema, 1, seed=11)[0]).encode()


HEADERS = {"X-API-Key": KEY, "Content-Type": "application/json"}


def test_serves_predictions_metrics_and_json_logs(served_model_dir, tmp_path, row) -> None:
    with server(served_model_dir, tmp_path) as srv:
        assert request(f"{srv.url}/health/live")[0] == 200
        status, headers, body = request(
            f"{srv.url}/v1/predict", row, {**HEADERS, "X-Request-ID": "it-1"}
        )
        assert status == 200 and headers["x-request-id"] == "it-1"
        assert 0.0 <= json.loads(body)["p_hat"] <= 1.0
        metrics = request(f"http://127.0.0.1:{srv.metrics_port}/metrics")[2].decode()
        for name in (
            "http_requests_total",
            "http_request_duration_seconds_bucket",
            "prediction_score_bucket",
            "model_info",
            "model_ready 1.0",
            "http_requests_in_flight",
            "http_requests_rejected_total",
        ):
            assert name in metrics, name
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=20) == 0
    lines = srv.lines()  # every line of stdout is one JSON object
    access = [line for line in lines if line.get("msg") == "request"]
    mine = [line for line in access if line["request_id"] == "it-1"]
    assert len(mine) == 1
    assert {"route", "status", "latency_ms", "model_version", "method"} <= set(mine[0])
    assert row.decode()[:40] not in srv.log.read_text()


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian: prometheus) is not installed"
)
def test_metrics_are_promtool_clean(served_model_dir, tmp_path, row) -> None:
    with server(served_model_dir, tmp_path) as srv:
        for headers in (HEADERS, {}):  # a 200 and a 401, so labelled series exist
            request(f"{srv.url}/v1/predict", row, headers)
        text = request(f"http://127.0.0.1:{srv.metrics_port}/metrics")[2]
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()


@pytest.mark.parametrize("drain_delay", ["2", "0"])
def test_sigterm_flips_readiness_finishes_in_flight_and_exits_zero(
    served_model_dir, tmp_path, row, drain_delay
) -> None:
    with server(served_model_dir, tmp_path, DRAIN_DELAY_S=drain_delay) as srv:
        in_flight = partial_request(srv.port, row, sent=len(row) // 2)
        time.sleep(0.2)
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        if drain_delay != "0":  # with no delay the listener is already closed
            status, _, body = request(f"{srv.url}/health/ready")
            assert status == 503 and json.loads(body)["error"]["code"] == "not_ready"
            assert request(f"{srv.url}/health/live")[0] == 200  # still alive while draining
        in_flight.sendall(row[len(row) // 2 :])
        status, body = read_response(in_flight)
        assert status == 200, body
        assert 0.0 <= json.loads(body)["p_hat"] <= 1.0
        assert srv.proc.wait(timeout=20) == 0
        assert time.monotonic() - started < 15
    assert any("draining" in line.get("msg", "") for line in srv.lines())


def test_overload_is_shed_while_health_and_metrics_answer(served_model_dir, tmp_path, row) -> None:
    with server(served_model_dir, tmp_path, MAX_CONCURRENCY="1") as srv:
        holder = partial_request(srv.port, row, sent=10)
        time.sleep(0.3)
        status, headers, body = request(f"{srv.url}/v1/predict", row, HEADERS)
        assert status == 503 and headers["retry-after"] == "1"
        assert json.loads(body)["error"]["code"] == "overloaded"
        assert request(f"{srv.url}/health/live")[0] == 200
        assert request(f"{srv.url}/health/ready")[0] == 200
        metrics = request(f"http://127.0.0.1:{srv.metrics_port}/metrics")[2].decode()
        assert 'http_requests_rejected_total{reason="overload"} 1.0' in metrics
        holder.sendall(row[10:])
        assert read_response(holder)[0] == 200
        assert request(f"{srv.url}/v1/predict", row, HEADERS)[0] == 200


def test_slow_request_times_out_with_504(served_model_dir, tmp_path, row) -> None:
    with server(served_model_dir, tmp_path, REQUEST_TIMEOUT_S="0.5") as srv:
        slow = partial_request(srv.port, row, sent=10)
        status, body = read_response(slow)  # the server answers without the rest of the body
        assert status == 504 and json.loads(body)["error"]["code"] == "timeout"
        assert request(f"{srv.url}/v1/predict", row, HEADERS)[0] == 200


def test_streamed_body_over_the_limit_is_413(served_model_dir, tmp_path) -> None:
    with server(served_model_dir, tmp_path, MAX_BODY_BYTES="4096") as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        sock.sendall(
            f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        )
        try:
            for _ in range(4):
                sock.sendall(b"800\r\n" + b" " * 2048 + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may close after answering 413
        assert read_response(sock)[0] == 413


@pytest.mark.parametrize(
    ("env", "code", "message"),
    [({"API_KEYS": ""}, 2, "API_KEYS"), ({"MODEL_DIR": "/nonexistent-model-dir"}, 1, "dvc repro")],
)
def test_refuses_to_start(served_model_dir, env, code, message) -> None:
    full = env_for(served_model_dir, free_port(), free_port())
    full.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}.cli", "serve"],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == code
    assert message in proc.stdout + proc.stderr


def test_a_model_that_cannot_load_exits_1(served_model_dir, tmp_path) -> None:
    broken = tmp_path / "models"
    broken.mkdir()
    shutil.copy(served_model_dir / "features.json", broken / "features.json")
    (broken / "model.onnx").write_bytes(b"not an onnx model")
    proc = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}.cli", "serve"],
        env=env_for(broken, free_port(), free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "model load failed" in proc.stdout and "different exports" in proc.stdout


@pytest.mark.skipif(
    shutil.which("locust") is None and not (Path(sys.executable).parent / "locust").exists(),
    reason="locust is not installed (it is in the dev group: run `make setup`)",
)
def test_short_locust_run_has_no_failures(served_model_dir, tmp_path) -> None:
    locust = str(Path(sys.executable).parent / "locust")
    with server(served_model_dir, tmp_path) as srv:
        proc = subprocess.run(
            [
                locust,
                "-f",
                str(REPO / "loadtest" / "locustfile.py"),
                "--headless",
                "-u",
                "4",
                "-r",
                "4",
                "-t",
                "4s",
                "--host",
                srv.url,
                "--only-summary",
                "--csv",
                str(tmp_path / "locust"),
            ],
            env={**os.environ, "API_KEY": KEY},
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stats = (tmp_path / "locust_stats.csv").read_text().splitlines()
    header = stats[0].split(",")
    total = dict(zip(header, stats[-1].split(","), strict=True))
    assert total["Name"] == "Aggregated" and int(total["Request Count"]) > 10
    assert int(total["Failure Count"]) == 0
