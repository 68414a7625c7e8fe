"""The generated model service, from the outside.

Fast tier (every scenario): the Dockerfile pins its base by digest for the chosen Python and has
the runtime properties the cluster relies on. Slow tier (default scenario, installed): after the
pipeline has produced ``models/``, ``make serve`` answers predictions on a free port and stops
cleanly on SIGTERM; the bench command is wired up. The image is built, pushed, pulled by digest
and run read-only as a non-root user by the day-one journey (tests/test_day_one.py), with the
pipeline's own build job.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Rendered, run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dockerfile_pins_the_base_and_runs_as_a_non_root_user(scenario: Rendered) -> None:
    text = (scenario.dev / "Dockerfile").read_text()
    python = scenario.answers["python_version"]
    base = rf"docker\.io/library/python:{re.escape(python)}-slim@sha256:[0-9a-f]{{64}}"
    assert re.search(
        rf"^ARG BASE_IMAGE={base}$",
        text,
        re.M,
    )
    assert text.count("FROM ${BASE_IMAGE}") == 2  # builder and runtime from the same pinned base
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r'^CMD \["/opt/venv/bin/[a-z0-9-]+", "serve"\]$', text, re.M)  # exec form
    assert "HEALTHCHECK" in text and "curl" not in text
    assert "--no-default-groups" in text and "--frozen" in text  # serving deps only, from uv.lock
    runtime = text.split("# ---- runtime", 1)[1]
    assert not re.search(r"^RUN ", runtime, re.M), "the final stage installs nothing"
    assert "/opt/uv" not in runtime, "uv (a build tool) stays in the builder stage"
    script = scenario.dev / "scripts" / "build-image.sh"
    assert script.stat().st_mode & 0o111, "scripts/build-image.sh must be executable"


# ------------------------------------------------------------------------------ slow tier


@pytest.fixture(scope="module")
def trained(installed_default: Rendered, git_identity_env: dict[str, str]) -> Path:
    """The installed default project with models/ (made by `make repro` unless already there)."""
    project = installed_default.dev
    models = project / "models"
    if not ((models / "model.onnx").exists() and (models / "features.json").exists()):
        run(["make", "repro"], cwd=project, env=git_identity_env, timeout=1800)
    assert (models / "model.onnx").exists() and (models / "features.json").exists()
    return project


def example_record(features: list[dict]) -> dict:
    values = {"money": "($1,250.00)", "percent": "42%"}
    return {
        f["name"]: f["categories"][0] if f["kind"] == "categorical" else values.get(f["kind"], 0.25)
        for f in features
    }


def http(url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextlib.contextmanager
def make_serve(project: Path, env: dict[str, str], log: Path) -> Iterator[tuple[str, int, Any]]:
    """`make serve` without API keys on free loopback ports, once ready: (base URL, metrics
    port, the make process). Its whole process group is killed when the block ends, however."""
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in env.items() if k not in {"API_KEYS", "AUTH_DISABLED"}}
    env.update(PORT=str(port), METRICS_PORT=str(metrics_port))
    with log.open("wb") as out:
        # Its own process group, so that nothing is left behind if the test fails.
        proc = subprocess.Popen(["make", "serve"], cwd=project, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if http(f"{base}/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"make serve not ready in 120 s:\n{log.read_text()}"
            time.sleep(0.3)
        yield base, metrics_port, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_make_serve_predicts_and_stops_cleanly(trained: Path, tmp_path: Path) -> None:
    schema = json.loads((trained / "models" / "features.json").read_text())
    log = tmp_path / "serve.log"
    with make_serve(trained, dict(os.environ), log) as (base, metrics_port, proc):
        status, answer = http(f"{base}/v1/predict", example_record(schema["features"]))
        assert status == 200, answer
        assert 0.0 <= answer["p_hat"] <= 1.0 and answer["business_outcome"] in (0, 1)
        assert answer["model_version"] == schema["model"]["version"]
        status, batch = http(
            f"{base}/v1/predict", {"records": [example_record(schema["features"])] * 3}
        )
        assert status == 200 and len(batch["predictions"]) == 3
        status, error = http(f"{base}/v1/predict", {"records": [{"no_such_field": 1}]})
        assert status == 422 and error["error"]["fields"][0]["field"] == "no_such_field"
        metrics = (
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
            .read()
            .decode()
        )
        assert "model_ready 1.0" in metrics and "http_requests_total" in metrics
        # SIGTERM to the server process itself, as Kubernetes does to PID 1: it drains and
        # exits 0, and so do `uv run` and make above it.
        server_pid = int(re.search(r"Started server process \[(\d+)\]", log.read_text())[1])
        os.kill(server_pid, signal.SIGTERM)
        proc.wait(timeout=30)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "AUTH_DISABLED=true" in text  # make serve without API_KEYS says so loudly
    assert '"msg":"stopped","exit_code":0' in text


@pytest.mark.slow
def test_bench_command_is_wired_up(trained: Path) -> None:
    assert "bench" in run(["make", "help"], cwd=trained)
    slug = trained.name
    out = run(["uv", "run", "--frozen", slug, "bench", "--help"], cwd=trained)
    assert "--duration" in out and "--batch-rows" in out
    # The in-process decoder timing runs in seconds and needs no wrk.
    out = run(
        ["uv", "run", "--frozen", slug, "bench", "--decoders", "--batch-rows", "200"], cwd=trained
    )
    assert "msgspec RequestDecoder, 1 row" in out and "json.loads + Encoder" in out
    assert "as binary tensors" in out  # the fast batch form (Open Inference Protocol) too
    if shutil.which("wrk") is None:
        pytest.skip("the load-generator half needs wrk (Debian: apt-get install wrk)")
    # The real thing, small and short: every scenario answered, nothing but 2xx. Speed is the
    # benchmark's business (it prints verdicts), not this test's.
    results = trained / "bench-results" / "smoke.json"
    out = run(
        [
            "uv",
            "run",
            "--frozen",
            slug,
            "bench",
            "--skip-pipeline",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--batch-rows",
            "200",
            "--output",
            str(results),
        ],
        cwd=trained,
    )
    (figures,) = json.loads(results.read_text())["rounds"]
    assert set(figures) == {
        "raw", "fastapi", "noop", "predict", "infer", "naive", "batch", "columns", "binary"
    }  # fmt: skip
    for name, f in figures.items():
        assert f["requests"] > 0 and f["non_2xx"] == 0 and not f["socket_errors"], (name, f)
    assert "predict / fastapi" in out and "predict / raw" in out and "binary p50" in out
