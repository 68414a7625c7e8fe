"""Hostile clients and faults against the real server on 127.0.0.1: nothing may stall it.

The ways trusted model servers get attacked and break, each bounded in count and time: strings
made to blow up a parser, huge or endless headers, connections that never finish or never start,
clients that hang up, batches that would fill the pod's memory, and a model or settings that
cannot be served. Throughout, ``/health/live`` must keep answering quickly (``Probe``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.bench import sample_records
from {{ cookiecutter.package_name }}.features import FeatureSchema

from service_support import (
    HEADERS,
    KEY,
    PACKAGE,
    Probe,
    closed_within,
    env_for,
    free_port,
    partial_request,
    peak_rss_mb,
    read_head,
    read_response,
    request,
    sample_row,
    server,
)

pytestmark = pytest.mark.integration

# Health checks under attack: liveness within 50 ms, readiness within 500 ms while the byte
# budget is full of maximum-size batches. The machine running the suite is shared (other tests
# run beside this one), so the typical probe (90th percentile) must meet the budget less the
# time the server and the probe waited for a CPU (``Probe.own_latencies``), and every probe,
# waits included, the worst bound.
LIVE_BUDGET_S, LIVE_WORST_S = 0.05, 0.5
READY_BUDGET_S, READY_WORST_S = 0.5, 2.0


@pytest.fixture(scope="module")
def row(served_model_dir: Path) -> bytes:
    return sample_row(served_model_dir)


@pytest.fixture(scope="module")
def schema(served_model_dir: Path) -> FeatureSchema:
    return FeatureSchema.load(served_model_dir / "features.json")


def assert_stayed_live(probe: Probe, budget: float = LIVE_BUDGET_S, worst: float = LIVE_WORST_S):
    assert probe.latencies and not probe.failures, probe.failures[:5]
    typical, n = _p90(probe.own_latencies), len(probe.latencies)
    assert typical <= budget, (
        f"p90 {typical * 1e3:.1f} ms over {n} probes, "
        f"{_p90(probe.latencies) * 1e3:.1f} ms with CPU waits"
    )
    assert probe.worst <= worst, f"worst of {n} probes {probe.worst * 1e3:.1f} ms"


def _p90(values: list[float]) -> float:
    """The 90th percentile."""
    return sorted(values)[len(values) * 9 // 10]


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def access_lines(lines: list[dict], **match: object) -> list[dict]:
    return [
        line
        for line in lines
        if line.get("msg") == "request" and all(line.get(k) == v for k, v in match.items())
    ]


# -- 1. strings made to make a parser backtrack ------------------------------------------------
def test_strings_built_to_backtrack_are_refused_at_once_and_nothing_stalls(
    served_model_dir, tmp_path, schema, row
) -> None:
    money = next(f.name for f in schema.features if f.kind == "money")
    percent = next(f.name for f in schema.features if f.kind == "percent")
    record = json.loads(row)
    attacks = []
    for value in (
        " " * 260 + "x",
        "(" + " " * 600 + "x",
        "$" + "1," * 300 + "x",
        "1" * 5000 + "%x",
    ):
        for field in (money, percent):
            attacks.append(json.dumps({**record, field: value}).encode())
            attacks.append(json.dumps({"columns": {field: [value] * 50}}).encode())
    with (
        server(served_model_dir, tmp_path) as srv,
        Probe(f"{srv.url}/health/live", pid=srv.proc.pid) as probe,
    ):
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda body: request(f"{srv.url}/v1/predict", body, HEADERS), attacks)
            )
        elapsed = time.perf_counter() - started
        time.sleep(0.2)
    assert {status for status, _, _ in answers} == {422}
    for _, _, body in answers:
        fields = {f["field"] for f in json.loads(body)["error"]["fields"]}
        assert fields <= {money, percent}, body[:300]
    assert elapsed < 5, f"{len(attacks)} hostile requests took {elapsed:.1f} s"
    assert_stayed_live(probe)


# -- 2. headers: too large, too many, too slow; connections that never start ---------------------
def test_header_limits_answer_431_and_close(served_model_dir, tmp_path) -> None:
    with (
        server(served_model_dir, tmp_path) as srv,
        Probe(f"{srv.url}/health/live", pid=srv.proc.pid) as probe,
    ):
        big = connect(srv.port)  # past the 16 KiB default, headers never finished
        big.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000)
        many = connect(srv.port)  # small, but more fields than allowed
        many.sendall(b"GET /health/live HTTP/1.1\r\n" + b"a: b\r\n" * 150 + b"\r\n")
        thousands = connect(srv.port)  # the 10,000 headers of the report
        thousands.sendall(
            b"GET /health/live HTTP/1.1\r\n" + b"".join(b"x%d: y\r\n" % i for i in range(10_000))
        )
        answers = [closed_within(sock, 3) for sock in (big, many, thousands)]
        time.sleep(0.2)
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"connection: close" in answer.lower()
    assert json.loads(answers[1].partition(b"\r\n\r\n")[2])["error"]["code"] == "too_many_headers"
    assert_stayed_live(probe)
    refused = access_lines(srv.lines(), status=431)
    assert {line["reason"] for line in refused} == {"headers_too_large", "too_many_headers"}
    assert all(line["route"] == "unparsed" for line in refused)


def test_slowloris_and_idle_connections_are_closed_on_time(served_model_dir, tmp_path) -> None:
    with (
        server(served_model_dir, tmp_path, HEADER_TIMEOUT_S="1", KEEP_ALIVE_S="1") as srv,
        Probe(f"{srv.url}/health/live", pid=srv.proc.pid) as probe,
    ):
        slow = [connect(srv.port) for _ in range(50)]
        idle = [connect(srv.port) for _ in range(20)]  # open, and never say a word
        kept = connect(srv.port)  # one answered request, then silence on a keep-alive line
        kept.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_head(kept)[0] == 200
        started = time.monotonic()
        request_line = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: "
        for position in range(len(request_line)):  # one byte every 0.1 s on every connection
            if time.monotonic() - started > 3:
                break
            for sock in slow:
                with contextlib.suppress(OSError):  # closed by the server: what we wait for
                    sock.sendall(request_line[position : position + 1])
            time.sleep(0.1)
        answers = [closed_within(sock, 2) for sock in slow]
        for sock in [*idle, kept]:
            closed_within(sock, 2)
        elapsed = time.monotonic() - started
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), answers[0][:200]
    assert elapsed < 4.5, f"slow and idle connections closed only after {elapsed:.1f} s"
    assert_stayed_live(probe)


def test_a_body_that_never_finishes_is_408_not_a_server_error(served_model_dir, tmp_path, row):
    with server(served_model_dir, tmp_path, BODY_TIMEOUT_S="0.5") as srv:
        started = time.monotonic()
        status, body = read_response(partial_request(srv.port, row, sent=10))
        elapsed = time.monotonic() - started
        assert request(f"{srv.url}/v1/predict", row, HEADERS)[0] == 200
    assert status == 408 and json.loads(body)["error"]["code"] == "body_timeout"
    assert elapsed < 2
    assert access_lines(srv.lines(), status=408, route="/v1/predict", reason="body_timeout")


def test_work_over_the_request_timeout_is_504(served_model_dir, tmp_path, schema) -> None:
    batch = json.dumps({"records": sample_records(schema, 3000, seed=5)}).encode()
    with server(served_model_dir, tmp_path, REQUEST_TIMEOUT_S="0.002") as srv:
        status, _, body = request(f"{srv.url}/v1/predict", batch, HEADERS)
        assert request(f"{srv.url}/health/live")[0] == 200
    assert status == 504 and json.loads(body)["error"]["code"] == "timeout"


# -- 3. a client that hangs up is not a server error -----------------------------------------
def test_client_aborts_are_499_without_traceback_or_5xx_metrics(
    served_model_dir, tmp_path, row
) -> None:
    with server(served_model_dir, tmp_path) as srv:
        for _ in range(3):
            sock = partial_request(srv.port, row, sent=len(row) // 2)
            time.sleep(0.1)
            sock.close()
        time.sleep(0.5)
        metrics = request(f"http://127.0.0.1:{srv.metrics_port}/metrics")[2].decode()
    aborted = access_lines(srv.lines(), status=499, route="/v1/predict")
    assert len(aborted) == 3 and all(line["reason"] == "client_closed" for line in aborted)
    assert not [line for line in srv.lines() if line["level"] in {"error", "critical"}]
    assert "Traceback" not in srv.log.read_text()
    assert 'status="499"' in metrics and 'status="5' not in metrics


# -- 4. memory is bounded by bytes in flight, not by the number of requests --------------------
def test_bodies_in_flight_are_capped_by_the_byte_budget(served_model_dir, tmp_path, schema):
    rows = 1500
    batch = json.dumps({"records": sample_records(schema, rows, seed=9)}).encode()
    limit = len(batch) + 1024
    settings = {
        "MAX_BATCH_ROWS": str(rows),
        "MAX_BODY_BYTES": str(limit),
        "BODY_BUDGET_BYTES": str(2 * limit),
    }
    with server(served_model_dir, tmp_path, **settings) as srv:
        baseline = peak_rss_mb(srv.proc.pid)
        with (
            Probe(f"{srv.url}/health/ready", pid=srv.proc.pid) as probe,
            ThreadPoolExecutor(64) as pool,
        ):
            answers = list(pool.map(lambda _: _post_tolerant(srv.port, batch), range(64)))
        peak = peak_rss_mb(srv.proc.pid)
    statuses = {status for status, _ in answers}
    assert statuses <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    for status, headers in answers:
        if status == 503:
            assert headers.get("retry-after") == "1"
    # Two bodies at most are held at once: the peak grows by a bounded multiple of the budget
    # (body, decoded records and tensor), not by 64 bodies (64 x 2 MB ~ 130 MB of body alone).
    assert peak - baseline < 60, f"peak RSS {peak:.0f} MB, {baseline:.0f} MB before the batches"
    assert_stayed_live(probe, READY_BUDGET_S, READY_WORST_S)


def _post_tolerant(port: int, body: bytes) -> tuple[int, dict[str, str]]:
    """POST ``body``; a server that answers 503 and closes before reading it is expected."""
    sock = connect(port)
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):  # refused and closed while still sending: read on
        sock.sendall(head + body)
    try:
        return read_head(sock)
    finally:
        sock.close()


# -- 5. start-up faults: one line, a non-zero exit, no port ----------------------------------------
def _models(tmp_path: Path, source: Path, change: Callable[[Path], None]) -> Path:
    target = tmp_path / "models"
    shutil.copytree(source, target)
    change(target)
    return target


def _edit_schema(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    """Change the exported schema in place (``edit`` mutates the parsed object)."""

    def change(models: Path) -> None:
        path = models / "features.json"
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))

    return change


def _write_schema(text: str) -> Callable[[Path], None]:
    return lambda models: (models / "features.json").write_text(text)


def _swap_onnx_byte(models: Path) -> None:
    """A model file that is not the one features.json was exported with (one byte differs)."""
    path = models / "model.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(models: Path) -> None:
    path = models / "model.onnx"
    path.write_bytes(path.read_bytes()[:100])


START_FAULTS: dict[str, tuple[dict[str, str], Callable[[Path], None] | None, int, str]] = {
    "no-api-keys": ({"API_KEYS": ""}, None, 2, "API_KEYS"),
    "bad-number": ({"MAX_CONCURRENCY": "many"}, None, 2, "MAX_CONCURRENCY"),
    "budget-below-body": ({"BODY_BUDGET_BYTES": "10"}, None, 2, "BODY_BUDGET_BYTES"),
    "no-model-dir": ({"MODEL_DIR": "/nonexistent-model-dir"}, None, 1, "dvc repro"),
    "missing-onnx": ({}, lambda m: (m / "model.onnx").unlink(), 1, "model.onnx"),
    "truncated-onnx": ({}, _truncate, 1, "model.onnx"),
    "corrupt-onnx": ({}, lambda m: (m / "model.onnx").write_bytes(b"not onnx"), 1, "model.onnx"),
    "schema-is-a-list": ({}, _write_schema("[]"), 1, "features.json"),
    "schema-is-null": ({}, _write_schema("null"), 1, "features.json"),
    "schema-not-json": ({}, _write_schema('{"features": ['), 1, "features.json"),
    "threshold-null": ({}, _edit_schema(lambda d: d.update(threshold=None)), 1, "threshold"),
    "no-features": ({}, _edit_schema(lambda d: d.pop("features")), 1, "features"),
    # The model unit: the threshold is inside the checksum, and the checksum must be there.
    "threshold-edited": ({}, _edit_schema(lambda d: d.update(threshold=0.99)), 1, "checksum"),
    "checksum-removed": ({}, _edit_schema(lambda d: d.pop("checksum")), 1, "checksum"),
    "onnx-from-another-export": ({}, _swap_onnx_byte, 1, "different exports"),
}


@pytest.mark.parametrize("fault", list(START_FAULTS))
def test_start_up_faults_exit_in_one_json_line_before_any_port_answers(
    served_model_dir, tmp_path, fault
) -> None:
    env, change, code, cause = START_FAULTS[fault]
    model_dir = served_model_dir if change is None else _models(tmp_path, served_model_dir, change)
    port, metrics_port = free_port(), free_port()
    full = env_for(model_dir, port, metrics_port)
    full.update(env)
    answered = threading.Event()
    done = threading.Event()

    def knock() -> None:  # did any port open while the process ran?
        while not done.is_set():
            for p in (port, metrics_port):
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=0.05).close()
                    answered.set()
                except OSError:
                    pass
            time.sleep(0.01)

    knocker = threading.Thread(target=knock, daemon=True)
    knocker.start()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", f"{PACKAGE}.cli", "serve"],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    done.set()
    knocker.join()
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == code, lines
    assert len(lines) == 1, lines
    line = json.loads(lines[0])
    assert line["level"] == "error" and cause in line["msg"], line
    assert "Traceback" not in line["msg"] and "exc" not in line
    assert not answered.is_set()
    if elapsed >= 5 + _python_start_s():  # measured again, now: the machine may be busier
        assert elapsed < 5 + _python_start_s(fresh=True), f"took {elapsed:.1f} s to refuse"


_START: list[float] = []


def _python_start_s(fresh: bool = False) -> float:
    """How long this machine takes to import the service's stack at all (measured once, or
    ``fresh``): the 5 s budget is for the service's own checks, on top of the interpreter's
    start and imports (they take well under a second; the margin is for a CI runner busy with
    other jobs)."""
    if fresh or not _START:
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-c", f"import {PACKAGE}.serving.server"], check=True, timeout=60
        )
        _START[:] = [time.monotonic() - started]
    return _START[0]


# -- 6. drain: keep-alive clients are told to go ---------------------------------------------------
def test_responses_while_draining_say_connection_close(served_model_dir, tmp_path, row) -> None:
    with server(served_model_dir, tmp_path, DRAIN_DELAY_S="2") as srv:
        kept = connect(srv.port)
        head = (
            f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(row)}\r\n\r\n"
        ).encode()
        kept.sendall(head + row)
        status, headers = read_head(kept)
        assert status == 200 and headers.get("connection") != "close"
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        kept.sendall(head + row)
        status, headers = read_head(kept)
        closed_within(kept, 1.0)  # and the server closes it at once, as the header said
        kept.close()
        assert srv.proc.wait(timeout=20) == 0
    assert status == 200 and headers["connection"] == "close"
