"""``<project> bench``: the service against an empty endpoint and a naive app, in one run.

Each server runs on 127.0.0.1 pinned to one CPU with ``taskset``; wrk runs on the others.
Scenarios, in this order, each after a short discarded warm-up:

1. ``empty``  - ``POST /_bench/noop`` on the same server (same middleware, auth, body read;
   only enabled with BENCH_MODE=true), the ceiling for this stack;
2. ``predict``  - ``POST /v1/predict`` with one record;
3. ``naive``  - the same record through dict → DataFrame → scikit-learn (``bench_naive``);
4. ``batch``  - ``POST /v1/predict`` with a ``--batch-rows`` batch of records
   (``{"records": [...]}``) over ONE connection, so its latency is the time of one batch, not
   queueing;
5. ``columns``  - the same rows as one columnar batch (``{"columns": {...}}``), likewise;
6. ``packed``  - the same columnar batch with every numeric column packed (base64 float64,
   ``serving/bodies.py``); money, percent and categorical columns stay JSON strings.

Prints req/s and p50/p99 per scenario and the ratios predict/empty and predict/naive, and
writes them to ``bench-results/service.json``. Figures on a shared machine are noisy: compare
ratios within one run, not absolute numbers across runs. ``--decoders`` times the request
decoders in-process instead (msgspec vs json + ``Encoder``), and each stage of a batch in both
forms (parse, tensor, inference, response).

Before the service, the pipeline: every DVC stage (generate-data, prepare, train, evaluate,
export) runs as its own process, like ``dvc repro``, on this repository's params.yaml in a
scratch folder, and the seconds per stage and in total are printed (target: under 60 s).
``--skip-pipeline`` leaves it out.

Targets (printed, not asserted): predict >= 0.6x empty and >= 25x naive, p99 <= 20 ms,
batch of 10,000 rows ≤ 100 ms (every batch form is measured and judged); the pipeline < 60 s.
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

from .features import FeatureSchema
from .serving.bodies import as_columns

PACKAGE = __name__.rsplit(".", 1)[0]
API_KEY = "bench-key"  # pragma: allowlist secret - a throwaway key for the loopback bench
TARGETS = {"predict_over_empty": 0.6, "predict_over_naive": 25.0, "p99_ms": 20.0, "batch_ms": 100.0}


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


def packed_columns(schema: FeatureSchema, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The columnar body with every numeric column packed, as a batch client would send it
    (money, percent and categorical columns keep their raw strings)."""
    numeric = [f.name for f in schema.features if f.kind == "numeric"]
    return as_columns(records, packed=numeric)


# The batch scenarios: (scenario, what its body is).
BATCH_FORMS = (
    ("batch", "as records"),
    ("columns", "as columns"),
    ("packed", "as columns, numbers packed"),
)


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


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  # nosec B310
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
def run_servers(args: argparse.Namespace, schema: FeatureSchema, work: Path) -> dict[str, Any]:
    records = sample_records(schema, max(args.batch_rows, 1), seed=1)
    row_file = work / "row.json"
    row_file.write_text(json.dumps(records[0]))
    batch_file = work / "batch.json"
    batch_file.write_text(json.dumps({"records": records[: args.batch_rows]}))
    columns_file = work / "columns.json"  # the same rows and values, one array per feature
    columns_file.write_text(json.dumps(as_columns(records[: args.batch_rows])))
    packed_file = work / "packed.json"  # the same again, numeric columns packed
    packed_file.write_text(json.dumps(packed_columns(schema, records[: args.batch_rows])))
    headers = {"Content-Type": "application/json", "X-API-Key": API_KEY}
    row_lua = lua_script(work / "row.lua", row_file, headers)
    batch_lua = lua_script(work / "batch.lua", batch_file, headers)
    columns_lua = lua_script(work / "columns.lua", columns_file, headers)
    packed_lua = lua_script(work / "packed.lua", packed_file, headers)

    cpus = sorted(os.sched_getaffinity(0))
    have_taskset = shutil.which("taskset") is not None
    server_cpu = cpus[-1] if have_taskset else None
    load_cpus = ",".join(map(str, cpus[:-1] or cpus)) if have_taskset else None
    if not have_taskset:
        print("warning: taskset not found (util-linux): servers are NOT pinned to one CPU")

    port, metrics_port, naive_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "MODEL_DIR": str(args.model_dir),
        "API_KEYS": API_KEY,
        "AUTH_DISABLED": "false",
        "BENCH_MODE": "true",
        "MAX_CONCURRENCY": "1024",
        "MAX_BODY_BYTES": str(max(64 << 20, batch_file.stat().st_size + 1024)),
        "REQUEST_TIMEOUT_S": "60",
    }
    service_cmd = pinned([sys.executable, "-m", f"{PACKAGE}.cli", "serve"], server_cpu)
    naive_cmd = pinned(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"{PACKAGE}.bench_naive:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(naive_port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        server_cpu,
    )
    base = f"http://127.0.0.1:{port}"
    naive = f"http://127.0.0.1:{naive_port}"
    results: dict[str, Any] = {
        "server_cpu": server_cpu,
        "wrk_cpus": load_cpus,
        "connections": args.connections,
        "duration_s": args.duration,
        "row_bytes": row_file.stat().st_size,
        "batch_rows": args.batch_rows,
        "batch_bytes": batch_file.stat().st_size,
        "columns_bytes": columns_file.stat().st_size,
        "packed_bytes": packed_file.stat().st_size,
        "rounds": [],
    }
    with (
        running(service_cmd, env, work / "service.log") as service,
        running(naive_cmd, env, work / "naive.log") as naive_proc,
    ):
        wait_ready(f"{base}/health/ready", service, work / "service.log")
        wait_ready(f"{naive}/docs", naive_proc, work / "naive.log")
        row = row_file.read_bytes()
        ours = post(f"{base}/v1/predict", row, headers)
        theirs = post(f"{naive}/predict", row, headers)
        post(f"{base}/_bench/noop", row, headers)
        results["check"] = {"service_p_hat": ours["p_hat"], "naive_p_hat": theirs["p_hat"]}
        by_rows = post(f"{base}/v1/predict", batch_file.read_bytes(), headers)
        by_columns = post(f"{base}/v1/predict", columns_file.read_bytes(), headers)
        by_packed = post(f"{base}/v1/predict", packed_file.read_bytes(), headers)
        if not by_rows == by_columns == by_packed:
            raise RuntimeError("the batch forms gave different answers on the same rows")
        scenarios = [
            ("empty", f"{base}/_bench/noop", row_lua, args.connections),
            ("predict", f"{base}/v1/predict", row_lua, args.connections),
            ("naive", f"{naive}/predict", row_lua, args.connections),
            ("batch", f"{base}/v1/predict", batch_lua, 1),
            ("columns", f"{base}/v1/predict", columns_lua, 1),
            ("packed", f"{base}/v1/predict", packed_lua, 1),
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
    summary["predict_over_empty"] = med([r["predict"]["rps"] / r["empty"]["rps"] for r in rounds])
    summary["predict_over_naive"] = med([r["predict"]["rps"] / r["naive"]["rps"] for r in rounds])
    return summary


def report(results: dict[str, Any], summary: dict[str, Any]) -> None:
    print()
    print(
        f"server on CPU {results['server_cpu']}, wrk on CPU(s) {results['wrk_cpus']}, "
        f"{results['connections']} connections ({results['duration_s']} s per scenario, "
        f"{len(results['rounds'])} round(s), medians); row body {results['row_bytes']} B, "
        f"batch {results['batch_rows']} rows = {results['batch_bytes'] / 1e6:.1f} MB as records, "
        f"{results['columns_bytes'] / 1e6:.1f} MB as columns, "
        f"{results['packed_bytes'] / 1e6:.1f} MB packed, over 1 connection"
    )
    print(f"{'scenario':10s} {'req/s':>10s} {'p50 ms':>9s} {'p99 ms':>9s} {'non-2xx':>8s}")
    for name in ("empty", "predict", "naive", *(name for name, _ in BATCH_FORMS)):
        s = summary[name]
        print(
            f"{name:10s} {s['rps'] or 0:10.1f} {s['p50_ms'] or 0:9.2f} "
            f"{s['p99_ms'] or 0:9.2f} {s['non_2xx']:8d}"
        )
    pe, pn = summary["predict_over_empty"], summary["predict_over_naive"]
    p99 = summary["predict"]["p99_ms"]

    def verdict(ok: bool) -> str:
        return "meets target" if ok else "MISSES target"

    print()
    print(f"predict / empty = {pe:.2f}x  ({verdict(pe >= TARGETS['predict_over_empty'])} >= 0.6x)")
    print(f"predict / naive = {pn:.1f}x  ({verdict(pn >= TARGETS['predict_over_naive'])} >= 25x)")
    print(f"predict p99     = {p99:.2f} ms  ({verdict(p99 <= TARGETS['p99_ms'])} <= 20 ms)")
    for name, body in BATCH_FORMS:
        ms = summary[name]["p50_ms"]
        print(
            f"{name + ' p50':15s} = {ms:.1f} ms  ({verdict(ms <= TARGETS['batch_ms'])} <= 100 ms "
            f"for {results['batch_rows']} rows {body})"
        )


def bench_decoders(schema: FeatureSchema, batch_rows: int, model_dir: Path) -> None:
    """In-process: msgspec RequestDecoder vs json.loads + Encoder.encode_records, and each stage
    of a ``batch_rows`` batch in both forms (best of a few runs each, one CPU, no HTTP)."""
    from .features import Encoder
    from .serving.decoding import RequestDecoder
    from .serving.model import Model
    from .serving.responses import batch_response

    records = sample_records(schema, batch_rows, seed=1)
    one = json.dumps(records[0]).encode()
    batch = json.dumps({"records": records}).encode()
    columns = json.dumps(as_columns(records)).encode()
    packed = json.dumps(packed_columns(schema, records)).encode()
    decoder, encoder = RequestDecoder(schema, max(batch_rows, 1)), Encoder(schema)

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
            f"msgspec RequestDecoder, {batch_rows} rows packed",
            best(lambda: decoder.decode(packed), 3, 1),
        ),
        (
            f"json.loads + Encoder, {batch_rows} rows",
            best(lambda: encoder.encode_records(json.loads(batch)["records"]), 3, 1),
        ),
    ]
    for name, ms in rows:
        print(f"{name:45s} {ms:10.3f} ms")

    model = Model.load(model_dir, schema)
    model.warm_up()
    print(
        f"\n{batch_rows} rows, per stage (ms)      {'parse':>8s} {'tensor':>8s} "
        f"{'infer':>8s} {'response':>8s} {'total':>8s}   body"
    )
    for label, body in (("records", batch), ("columns", columns), ("packed", packed)):
        form, parsed = decoder.parse(body)
        tensor, _ = decoder.to_tensor(form, parsed)
        p = model.predict(tensor)
        stages = [
            best(lambda body=body: decoder.parse(body), 5, 1),
            best(lambda form=form, parsed=parsed: decoder.to_tensor(form, parsed), 5, 1),
            best(lambda tensor=tensor: model.predict(tensor), 5, 1),
            best(lambda p=p: batch_response(model.version, schema.threshold, p), 5, 1),
        ]
        print(
            f"{'  as ' + label:32s}"
            + "".join(f" {ms:8.1f}" for ms in stages)
            + f" {sum(stages):8.1f}   {len(body) / 1e6:.1f} MB"
        )


# -- the pipeline ----------------------------------------------------------------------------
PIPELINE_STAGES = ("generate-data", "prepare", "train", "evaluate", "export")
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
