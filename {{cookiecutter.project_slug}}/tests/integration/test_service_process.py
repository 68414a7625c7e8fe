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
from pathlib import Path

import pytest

from service_support import (
    HEADERS,
    KEY,
    REPO,
    closed_within,
    partial_request,
    read_response,
    request,
    sample_row,
    server,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def row(served_model_dir: Path) -> bytes:
    return sample_row(served_model_dir)


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


def test_pipelined_requests_get_whole_answers_in_order(served_model_dir, tmp_path, row):
    """The guard answers a prediction, and its own refusals, in one write
    (http_limits.write_response): a prediction, a request without a key and a prediction sent
    back to back on one connection get three complete answers, in order, each with its own
    request id, length and headers, and the connection then closes as the last one asked."""
    other = sample_row(served_model_dir, seed=12)
    sent = [(row, KEY, "keep-alive"), (row, "wrong", "keep-alive"), (other, KEY, "close")]
    with server(served_model_dir, tmp_path) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        requests = b""
        for n, (body, key, connection) in enumerate(sent):
            requests += (
                f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
                f"Content-Type: application/json\r\nX-Request-ID: pipelined-{n}\r\n"
                f"Connection: {connection}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
        sock.sendall(requests)
        data = closed_within(sock, 15.0)
        expected = [request(f"{srv.url}/v1/predict", body, HEADERS)[2] for body in (row, other)]
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        answers.append((lines[0], headers, json.loads(rest[:length])))
        data = rest[length:]
    assert [(a[0], a[1]["x-request-id"], a[1].get("connection")) for a in answers] == [
        ("HTTP/1.1 200 OK", "pipelined-0", None),
        ("HTTP/1.1 401 Unauthorized", "pipelined-1", None),
        ("HTTP/1.1 200 OK", "pipelined-2", "close"),
    ]
    assert [answers[0][2], answers[2][2]] == [json.loads(e) for e in expected]
    refused = answers[1]
    assert refused[1]["www-authenticate"] == "ApiKey"
    assert refused[1]["content-type"] == "application/json"
    assert refused[2]["error"]["code"] == "unauthorised"
    assert refused[2]["request_id"] == "pipelined-1"


def test_a_refused_body_is_read_off_then_the_connection_closed(served_model_dir, tmp_path):
    """A client that goes on sending a body the server has refused (413), as clients do, can
    finish sending and read its answer: the server reads and discards the rest for a bounded
    time. Closing on unread bytes instead makes the kernel answer them with a reset, and the
    client's send fails before it reads the 413. A client that never stops sending is closed
    when that time is up."""
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    chunk = b"4000\r\n" + b" " * 0x4000 + b"\r\n"  # 16 KiB
    with server(served_model_dir, tmp_path, MAX_BODY_BYTES="4096") as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        sock.sendall(head + chunk * 128 + b"0\r\n\r\n")  # 2 MiB, most of it after the 413
        assert read_response(sock)[0] == 413

        endless = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        endless.sendall(head)
        started = time.monotonic()
        with pytest.raises(OSError):  # the reset of the close, once the server stops reading
            while time.monotonic() - started < 10:
                endless.sendall(chunk)
                time.sleep(0.01)
        assert time.monotonic() - started < 5
        endless.close()


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
