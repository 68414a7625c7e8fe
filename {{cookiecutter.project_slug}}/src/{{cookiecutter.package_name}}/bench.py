"""``<project> bench``: the service against honest baselines and a naive app, in one run.

Each server runs on 127.0.0.1 pinned to one CPU with ``taskset``; wrk runs on the others. The
scenarios, in this order, each after a short discarded warm-up, over 16 connections unless said:

1. ``raw``  - a bare ASGI app on the same server settings (uvicorn, httptools, uvloop), its own
   process (``bench_baselines.raw``): what this Python server can do at all;
2. ``fastapi``  - an empty FastAPI endpoint, its own process (``bench_baselines.fastapi``): the
   framework's limit;
3. ``noop``  - ``POST /_bench/noop`` on the service (its guard, auth and body read, no work;
   BENCH_MODE=true only): this stack's own cost;
4. ``predict``  - ``POST /v1/predict`` with one record;
5. ``infer``  - the same record through the Open Inference Protocol (``/v2/.../infer``, JSON);
6. ``naive``  - the same record through dict → DataFrame → scikit-learn (``bench_naive``);
7. ``batch``, ``columns``  - ``--batch-rows`` rows to ``/v1/predict`` as records and as
   columns, over ONE connection, so the latency is one batch's, not queueing;
8. ``binary``  - the same rows through the Open Inference Protocol with binary tensor data (the
   standard fast form for large batches), one connection.

Prints req/s and p50/p99 per scenario and the ratios predict/fastapi, predict/raw and
predict/naive, and writes them to ``bench-results/service.json``. Figures on a shared machine are
noisy: compare ratios within one run, not absolute numbers across runs. ``--decoders`` times the
request decoders in-process instead, and each stage of a batch in every form.

Before the service, the pipeline: every DVC stage (prepare, train, evaluate, export, after
``sample-data`` writes ``data.n_rows`` rows made from the contract, so it runs on any team's
columns) runs as its own process, like ``dvc repro``, on this repository's params.yaml in a
scratch folder, and the seconds per stage and in total are printed (target: under 60 s).
``--skip-pipeline`` leaves it out.

Targets (printed, not asserted): predict >= 1.3x fastapi, >= 0.4x raw and >= 25x naive, p99 <=
5 ms; 10,000 rows through the binary protocol <= 30 ms p50; the pipeline < 60 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess  # nosec B404 - runs wrk, taskset and the servers, argument lists only
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .features import FeatureSchema
from .serving.bodies import as_columns, infer_request
from .serving.config import DEFAULT_MODEL_NAME

PACKAGE = __name__.rsplit(".", 1)[0]
API_KEY = "bench-key"  # pragma: allowlist secret - a throwaway key for the loopback bench
TARGETS = {
    "predict_over_fastapi": 1.3,
    "predict_over_raw": 0.4,
    "predict_over_naive": 25.0,
    "p99_ms": 5.0,
    "binary_ms": 30.0,
}


def sample_records(
    schema: FeatureSchema, n: int, seed: int = 0, missing: float = 0.02
) -> list[dict[str, Any]]:
    """Plausible raw records for any schema: numbers, money/percent strings, categories, nulls."""
    rng = random.Random(seed)  # noqa: S311  # nosec B311 - sample data, not secrets
    records = []
    for _ in range(n):
        record: dict[str, Any] = {}
        for f in schema.features:
            if f.nullable and rng.random() < missing:
                record[f.name] = None
            elif f.kind == "categorical":
                record[f.name] = rng.choice(f.categories)
            elif f.kind == "money":
                amount = rng.lognormvariate(7, 1.5) * (1 if rng.random() < 0.8 else -1)
                text = f"${abs(amount):,.2f}"
                record[f.name] = f"({text})" if amount < 0 else text
            elif f.kind == "percent":
                record[f.name] = f"{rng.uniform(0, 100):.0f}%"
            else:
                record[f.name] = rng.gauss(0, 1)
        records.append(record)
    return records


# The batch scenarios: (scenario, what its body is).
BATCH_FORMS = (
    ("batch", "as records"),
    ("columns", "as columns"),
    ("binary", "as binary tensors (Open Inference Protocol)"),
)
SINGLE_ROW = ("raw", "fastapi", "noop", "predict", "infer", "naive")


# -- processes -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if cpu is not None else cmd


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603  # nosec B603
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ready(
    url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0, method: str = "GET"
) -> None:
    deadline = time.monotonic() + timeout
    data = b"" if method == "POST" else None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            ask = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
            with urllib.request.urlopen(ask, timeout=2) as response:  # noqa: S310  # nosec B310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def post(url: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310  # nosec B310
        return json.loads(response.read())


# -- wrk -----------------------------------------------------------------------------------
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match[1]) * UNITS[match[2]]


def parse_wrk(out: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(match[1]) if match else None
    for q in ("50", "99"):
        match = re.search(rf"^\s+{q}(?:\.000)?%\s+(\S+)", out, re.M)
        result[f"p{q}_ms"] = _ms(match[1]) if match else None
    match = re.search(r"(\d+) requests in", out)
    result["requests"] = int(match[1]) if match else 0
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = int(match[1]) if match else 0
    match = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = match[1].strip() if match else ""
    return result


def lua_script(path: Path, body_file: Path, headers: dict[str, str]) -> Path:
    lines = [
        'wrk.method = "POST"',
        f"local f = assert(io.open({json.dumps(str(body_file))}, 'rb'))",
        'wrk.body = f:read("*a")',
        "f:close()",
        *(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(
    url: str, script: Path, seconds: float, connections: int, cpus: str | None
) -> dict[str, Any]:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)  # noqa: S603  # nosec B603
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    result = parse_wrk(proc.stdout)
    result["raw"] = proc.stdout
    return result


# -- the run -------------------------------------------------------------------------------
def uvicorn_cmd(app: str, port: int, cpu: int | None) -> list[str]:
    """A baseline app on the service's server settings (uvloop, httptools, no access log)."""
    return pinned(
        [
            *(sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)),
            *("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--no-proxy-headers"),
            *("--log-level", "warning"),
        ],
        cpu,
    )


def write_bodies(schema: FeatureSchema, rows: int, work: Path) -> dict[str, tuple[Path, dict]]:
    """Each scenario's body file and its extra headers."""
    records = sample_records(schema, max(rows, 1), seed=1)
    features = [(f.name, f.kind) for f in schema.features]
    one, _ = infer_request(features, records[:1], binary=False)
    binary, header_length = infer_request(features, records[:rows], binary=True)
    bodies = {
        "row": (json.dumps(records[0]).encode(), {}),
        "infer": (one, {}),
        "batch": (json.dumps({"records": records[:rows]}).encode(), {}),
        "columns": (json.dumps(as_columns(records[:rows])).encode(), {}),
        "binary": (binary, {"Inference-Header-Content-Length": (header_length or b"").decode()}),
    }
    files = {}
    for name, (body, headers) in bodies.items():
        path = work / f"{name}.body"
        path.write_bytes(body)
        files[name] = (path, headers)
    return files


def run_servers(args: argparse.Namespace, schema: FeatureSchema, work: Path) -> dict[str, Any]:
    bodies = write_bodies(schema, args.batch_rows, work)
    headers = {"Content-Type": "application/json", "X-API-Key": API_KEY}
    scripts = {
        name: lua_script(work / f"{name}.lua", path, {**headers, **extra})
        for name, (path, extra) in bodies.items()
    }

    cpus = sorted(os.sched_getaffinity(0))
    have_taskset = shutil.which("taskset") is not None
    server_cpu = cpus[-1] if have_taskset else None
    load_cpus = ",".join(map(str, cpus[:-1] or cpus)) if have_taskset else None
    if not have_taskset:
        print("warning: taskset not found (util-linux): servers are NOT pinned to one CPU")

    ports = {name: free_port() for name in ("service", "metrics", "naive", "raw", "fastapi")}
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(ports["service"]),
        "METRICS_PORT": str(ports["metrics"]),
        "MODEL_DIR": str(args.model_dir),
        "API_KEYS": API_KEY,
        "AUTH_DISABLED": "false",
        "BENCH_MODE": "true",
        "MAX_CONCURRENCY": "1024",
        "MAX_BODY_BYTES": str(max(64 << 20, bodies["batch"][0].stat().st_size + 1024)),
        "BODY_BUDGET_BYTES": str(256 << 20),
        "REQUEST_TIMEOUT_S": "60",
    }
    base = f"http://127.0.0.1:{ports['service']}"
    urls = {
        "raw": f"http://127.0.0.1:{ports['raw']}/",
        "fastapi": f"http://127.0.0.1:{ports['fastapi']}/",
        "noop": f"{base}/_bench/noop",
        "predict": f"{base}/v1/predict",
        "infer": f"{base}/v2/models/{DEFAULT_MODEL_NAME}/infer",
        "naive": f"http://127.0.0.1:{ports['naive']}/predict",
    }
    commands = {
        "service": pinned([sys.executable, "-m", f"{PACKAGE}.cli", "serve"], server_cpu),
        "naive": uvicorn_cmd(f"{PACKAGE}.bench_naive:app", ports["naive"], server_cpu),
        "raw": uvicorn_cmd(f"{PACKAGE}.bench_baselines:raw", ports["raw"], server_cpu),
        "fastapi": uvicorn_cmd(f"{PACKAGE}.bench_baselines:fastapi", ports["fastapi"], server_cpu),
    }
    results: dict[str, Any] = {
        "server_cpu": server_cpu,
        "wrk_cpus": load_cpus,
        "connections": args.connections,
        "duration_s": args.duration,
        "batch_rows": args.batch_rows,
        "bytes": {name: path.stat().st_size for name, (path, _) in bodies.items()},
        "rounds": [],
    }
    with contextlib.ExitStack() as stack:
        procs = {
            name: stack.enter_context(running(cmd, env, work / f"{name}.log"))
            for name, cmd in commands.items()
        }
        wait_ready(f"{base}/health/ready", procs["service"], work / "service.log")
        wait_ready(f"http://127.0.0.1:{ports['naive']}/docs", procs["naive"], work / "naive.log")
        for name in ("raw", "fastapi"):
            wait_ready(urls[name], procs[name], work / f"{name}.log", method="POST")
        check_answers(urls, bodies, headers)
        results["check"] = {"agree": True}
        scenarios = [
            ("raw", urls["raw"], scripts["row"], args.connections),
            ("fastapi", urls["fastapi"], scripts["row"], args.connections),
            ("noop", urls["noop"], scripts["row"], args.connections),
            ("predict", urls["predict"], scripts["row"], args.connections),
            ("infer", urls["infer"], scripts["infer"], args.connections),
            ("naive", urls["naive"], scripts["row"], args.connections),
            ("batch", urls["predict"], scripts["batch"], 1),
            ("columns", urls["predict"], scripts["columns"], 1),
            ("binary", urls["infer"], scripts["binary"], 1),
        ]
        for round_no in range(args.rounds):
            figures: dict[str, Any] = {}
            for name, url, script, connections in scenarios:
                if args.warmup > 0:
                    wrk(url, script, args.warmup, connections, load_cpus)
                figures[name] = wrk(url, script, args.duration, connections, load_cpus)
                f = figures[name]
                print(
                    f"  round {round_no + 1} {name:8s} {f['rps'] or 0:10.1f} req/s  "
                    f"p50 {f['p50_ms'] or 0:8.2f} ms  p99 {f['p99_ms'] or 0:8.2f} ms  "
                    f"non-2xx {f['non_2xx']}",
                    flush=True,
                )
            results["rounds"].append(figures)
    return results


def check_answers(
    urls: dict[str, str], bodies: dict[str, tuple[Path, dict]], headers: dict[str, str]
) -> None:
    """Every form of the same rows must get the same answers before anything is timed."""
    ours = post(urls["predict"], bodies["row"][0].read_bytes(), headers)
    theirs = post(urls["naive"], bodies["row"][0].read_bytes(), headers)
    if abs(ours["p_hat"] - theirs["p_hat"]) > 0.5:  # another model, but the same kind of answer
        raise RuntimeError(f"the naive app answers {theirs}, the service {ours}")
    forms = ("batch", "columns")
    batches = [post(urls["predict"], bodies[form][0].read_bytes(), headers) for form in forms]
    if batches[0] != batches[1]:
        raise RuntimeError("the batch forms gave different answers on the same rows")
    binary, extra = bodies["binary"]
    answer = post_raw(urls["infer"], binary.read_bytes(), {**headers, **extra})
    p_hat = [row["p_hat"] for row in batches[0]["predictions"]]
    if answer != p_hat:
        raise RuntimeError("the binary protocol gave other answers than /v1/predict")


def post_raw(url: str, body: bytes, headers: dict[str, str]) -> list[float]:
    """p_hat of a binary inference answer."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310  # nosec B310
        size = int(response.headers["Inference-Header-Content-Length"])
        content = response.read()
    header = json.loads(content[:size])
    offset = size
    for output in header["outputs"]:
        length = output["parameters"]["binary_data_size"]
        if output["name"] == "p_hat":
            return np.frombuffer(content[offset : offset + length], "<f4").tolist()
        offset += length
    raise RuntimeError("the binary answer has no p_hat")


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    import statistics

    rounds = results["rounds"]

    def med(values: list[float | None]) -> float | None:
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    summary: dict[str, Any] = {}
    for name in rounds[0]:
        summary[name] = {
            key: med([r[name][key] for r in rounds]) for key in ("rps", "p50_ms", "p99_ms")
        }
        summary[name]["non_2xx"] = sum(r[name]["non_2xx"] for r in rounds)

    def ratio(top: str, base: str) -> float | None:
        """The median of each round's own ``top / base`` (side by side, not across rounds)."""
        return med([r[top]["rps"] / r[base]["rps"] for r in rounds if r[base]["rps"]])

    for base in ("fastapi", "raw", "naive", "noop"):
        summary[f"predict_over_{base}"] = ratio("predict", base)
    summary["noop_over_raw"] = ratio("noop", "raw")
    # What the raw-ASGI target leaves a prediction's own work, per request on the one server
    # CPU: the target's time per request less the stack's own (noop's).
    raw, noop = summary["raw"]["rps"], summary["noop"]["rps"]
    summary["work_budget_us"] = (
        1e6 / (TARGETS["predict_over_raw"] * raw) - 1e6 / noop if raw and noop else None
    )
    return summary


def report(results: dict[str, Any], summary: dict[str, Any]) -> None:
    sizes = results["bytes"]
    print()
    print(
        f"server on CPU {results['server_cpu']}, wrk on CPU(s) {results['wrk_cpus']}, "
        f"{results['connections']} connections ({results['duration_s']} s per scenario, "
        f"{len(results['rounds'])} round(s), medians); row body {sizes['row']} B; "
        f"{results['batch_rows']} rows over 1 connection = "
        + ", ".join(f"{sizes[name] / 1e6:.1f} MB {body}" for name, body in BATCH_FORMS)
    )
    print(f"{'scenario':10s} {'req/s':>10s} {'p50 ms':>9s} {'p99 ms':>9s} {'non-2xx':>8s}")
    for name in (*SINGLE_ROW, *(name for name, _ in BATCH_FORMS)):
        s = summary[name]
        print(
            f"{name:10s} {s['rps'] or 0:10.1f} {s['p50_ms'] or 0:9.2f} "
            f"{s['p99_ms'] or 0:9.2f} {s['non_2xx']:8d}"
        )

    def verdict(ok: bool) -> str:
        return "meets target" if ok else "MISSES target"

    print()
    for base, unit in (("fastapi", "x"), ("raw", "x"), ("naive", "x")):
        ratio, target = summary[f"predict_over_{base}"], TARGETS[f"predict_over_{base}"]
        print(
            f"predict / {base:8s} = {ratio:6.2f}{unit}  ({verdict(ratio >= target)} >= {target}x)"
        )
    print(f"predict / noop     = {summary['predict_over_noop']:6.2f}x  (this stack's own cost)")
    budget = summary["work_budget_us"]
    left = "nothing" if budget is None or budget <= 0 else f"{budget:.1f} us"
    print(
        f"noop / raw         = {summary['noop_over_raw']:6.2f}x  (the stack with no work: at "
        f"{TARGETS['predict_over_raw']}x raw, a prediction's own work gets {left} a request)"
    )
    p99 = summary["predict"]["p99_ms"]
    print(f"predict p99        = {p99:6.2f} ms ({verdict(p99 <= TARGETS['p99_ms'])} <= 5 ms)")
    for name, body in BATCH_FORMS:
        ms = summary[name]["p50_ms"]
        judged = name == "binary"
        note = f"({verdict(ms <= TARGETS['binary_ms'])} <= 30 ms)" if judged else "(reported)"
        print(f"{name + ' p50':18s} = {ms:6.1f} ms {note} for {results['batch_rows']} rows {body}")


def bench_decoders(schema: FeatureSchema, batch_rows: int, model_dir: Path) -> None:
    """In-process: msgspec RequestDecoder vs json.loads + Encoder.encode_records, and each stage
    of a ``batch_rows`` batch in both forms (best of a few runs each, one CPU, no HTTP)."""
    from .features import Encoder
    from .serving.decoding import RequestDecoder
    from .serving.model import Model
    from .serving.open_inference import InferenceDecoder
    from .serving.responses import batch_response

    records = sample_records(schema, batch_rows, seed=1)
    one = json.dumps(records[0]).encode()
    batch = json.dumps({"records": records}).encode()
    columns = json.dumps(as_columns(records)).encode()
    features = [(f.name, f.kind) for f in schema.features]
    binary, header_length = infer_request(features, records, binary=True)
    decoder, encoder = RequestDecoder(schema, max(batch_rows, 1)), Encoder(schema)
    protocol = InferenceDecoder(schema, decoder, DEFAULT_MODEL_NAME)

    def best(fn: Any, repeat: int, number: int) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times.append((time.perf_counter() - start) / number)
        return min(times) * 1e3

    rows = [
        ("msgspec RequestDecoder, 1 row", best(lambda: decoder.decode(one), 5, 2000)),
        (
            "json.loads + Encoder, 1 row",
            best(lambda: encoder.encode_records([json.loads(one)]), 5, 2000),
        ),
        (f"msgspec RequestDecoder, {batch_rows} rows", best(lambda: decoder.decode(batch), 3, 1)),
        (
            f"msgspec RequestDecoder, {batch_rows} rows as columns",
            best(lambda: decoder.decode(columns), 3, 1),
        ),
        (
            f"InferenceDecoder, {batch_rows} rows as binary tensors",
            best(lambda: protocol.decode(binary, header_length), 3, 1),
        ),
        (
            f"json.loads + Encoder, {batch_rows} rows",
            best(lambda: encoder.encode_records(json.loads(batch)["records"]), 3, 1),
        ),
    ]
    for name, ms in rows:
        print(f"{name:50s} {ms:10.3f} ms")

    model = Model.load(model_dir, schema)
    model.warm_up()
    print(
        f"\n{batch_rows} rows, per stage (ms)      {'decode':>8s} "
        f"{'infer':>8s} {'response':>8s} {'total':>8s}   body"
    )
    inference = protocol.decode(binary, header_length)
    tensor = inference.decoded.tensor
    p = model.predict(tensor)
    forms = {
        "records": (lambda: decoder.decode(batch), lambda: batch_response("v", 0.5, p), batch),
        "columns": (lambda: decoder.decode(columns), lambda: batch_response("v", 0.5, p), columns),
        "binary tensors": (
            lambda: protocol.decode(binary, header_length),
            lambda: protocol.response(inference, "v", p, 0.5),
            binary,
        ),
    }
    for label, (decode, respond, body) in forms.items():
        infer = best(lambda: model.predict(tensor), 5, 1)
        stages = [best(decode, 5, 1), infer, best(respond, 5, 1)]
        print(
            f"{'  as ' + label:32s}"
            + "".join(f" {ms:8.1f}" for ms in stages)
            + f" {sum(stages):8.1f}   {len(body) / 1e6:.1f} MB"
        )


# -- the pipeline ----------------------------------------------------------------------------
PIPELINE_STAGES = ("sample-data", "prepare", "train", "evaluate", "export")
PIPELINE_TARGET_S = 60.0


def bench_pipeline(params: Path, work: Path) -> dict[str, float]:
    """Seconds per DVC stage on the repository's params (full size), each a fresh process."""
    shutil.copy(params, work / "params.yaml")
    seconds: dict[str, float] = {}
    for stage in PIPELINE_STAGES:
        cmd = [sys.executable, "-m", f"{__package__}.cli", stage, "--root", str(work)]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)  # noqa: S603  # nosec B603
        seconds[stage] = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"pipeline stage {stage} failed: {proc.stderr.strip()[-2000:]}")
    return seconds


def report_pipeline(seconds: dict[str, float]) -> None:
    total = sum(seconds.values())
    print("pipeline (each stage a fresh process, like dvc repro):")
    for stage, value in seconds.items():
        print(f"  {stage:<14} {value:6.1f} s")
    verdict = "meets" if total < PIPELINE_TARGET_S else "MISSES"
    print(f"  {'total':<14} {total:6.1f} s  ({verdict} the < {PIPELINE_TARGET_S:.0f} s target)\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", "models"))
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=1.0, help="discarded seconds before each")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=Path("bench-results/service.json"))
    parser.add_argument("--decoders", action="store_true", help="time the decoders only")
    parser.add_argument("--skip-pipeline", action="store_true", help="time the service only")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)

    from .serving.model import ModelError, load_schema

    try:
        schema = load_schema(args.model_dir)
    except ModelError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if args.decoders:
        bench_decoders(schema, args.batch_rows, args.model_dir)
        return 0
    if shutil.which("wrk") is None:
        print(
            "bench: wrk is not installed, so the service cannot be load-tested. Install it "
            "(Debian/Ubuntu: `apt-get install wrk`) and run `make bench` again.",
            file=sys.stderr,
        )
        return 2
    pipeline: dict[str, float] = {}
    if not args.skip_pipeline:
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            try:
                pipeline = bench_pipeline(args.params, Path(tmp))
            except RuntimeError as exc:
                print(f"bench: {exc}", file=sys.stderr)
                return 1
        report_pipeline(pipeline)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        try:
            results = run_servers(args, schema, Path(tmp))
        except RuntimeError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
    summary = summarise(results)
    report(results, summary)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for figures in results["rounds"]:
        for f in figures.values():
            f.pop("raw", None)
    output = {"summary": summary, "pipeline_seconds": pipeline, **results}
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    bad = {
        name: s["non_2xx"] for name, s in summary.items() if isinstance(s, dict) and s["non_2xx"]
    }
    if bad:
        print(f"bench: non-2xx responses {bad}: the figures are not valid", file=sys.stderr)
        return 1
    return 0
