"""The drift job: PSI per feature and on the score, a report, gauges, and the retrain trigger.

``<project> drift --records <file-or-dir of JSON lines> --models models``

Input records are the service's sampled prediction log lines (``"event": "prediction_sample"``,
shipped to ELK by Fluent Bit and exported for the job); other log lines are skipped. The job
writes ``drift_report.json``, exposes gauges (Prometheus textfile and/or Pushgateway), and when
the largest PSI crosses the threshold saved with the model it triggers the retrain pipeline
once per drift episode (see ``trigger.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..features import Encoder, FeatureSchema, FieldError
from ..model_files import PROFILE_FILE, SCHEMA_FILE
from .profile import ReferenceProfile, live_histograms
from .trigger import EpisodeState, TriggerConfig, TriggerError, trigger_retrain

SAMPLE_EVENT = "prediction_sample"
# Smoothing for empty bins: PSI is infinite when a bin is empty on one side only.
EPSILON = 1e-4


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index between two binned distributions (proportions)."""
    e = np.clip(np.asarray(expected, dtype=float), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=float), EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass
class DriftReport:
    model_version: str
    n_records: int
    n_skipped: int
    threshold: float
    feature_psi: dict[str, float]
    score_psi: float
    drifted: list[str]

    @property
    def max_psi(self) -> float:
        return max([self.score_psi, *self.feature_psi.values()])

    @property
    def is_drift(self) -> bool:
        return bool(self.drifted)

    def reason(self) -> str:
        worst = sorted(self.drifted, key=lambda n: -self.feature_psi.get(n, self.score_psi))[:5]
        return f"PSI above {self.threshold} for {', '.join(worst)} (max {self.max_psi:.3f})"


def read_samples(path: Path) -> Iterator[dict]:
    """Yield sample events from a JSON-lines file or every ``*.jsonl``/``*.log`` in a folder."""
    files = (
        sorted(p for p in path.iterdir() if p.suffix in {".jsonl", ".log"})
        if path.is_dir()
        else [path]
    )
    for file in files:
        with file.open() as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # other log lines (plain text) share the stream
                if isinstance(event, dict) and event.get("event") == SAMPLE_EVENT:
                    yield event


def compute_drift(
    profile: ReferenceProfile, schema: FeatureSchema, samples: list[dict]
) -> DriftReport:
    encoder = Encoder(schema)
    rows, scores, skipped = [], [], 0
    for sample in samples:
        try:
            score = float(sample["p_hat"])
            row = encoder.encode_records([sample["features"]])[0]
        except (FieldError, KeyError, TypeError, ValueError):
            skipped += 1  # a malformed sample is counted, never fatal
            continue
        rows.append(row)
        scores.append(score)
    matrix = np.vstack(rows) if rows else np.zeros((0, encoder.n_inputs), dtype=np.float32)
    live, live_score = live_histograms(profile, schema, matrix, np.asarray(scores))
    feature_psi = {name: psi(profile.features[name].proportions, live[name]) for name in live}
    score_psi = psi(profile.score.proportions, live_score)
    threshold = float(profile.drift["psi_threshold"])
    drifted = [name for name, value in feature_psi.items() if value > threshold]
    if score_psi > threshold:
        drifted.append("score")
    return DriftReport(
        profile.model_version, len(rows), skipped, threshold, feature_psi, score_psi, drifted
    )


def metrics_text(report: DriftReport, now: float) -> str:
    """The gauges in Prometheus text format (for the textfile collector or Pushgateway)."""
    lines = [
        "# HELP feature_drift_psi Population stability index of a feature vs the training profile.",
        "# TYPE feature_drift_psi gauge",
        *(
            f'feature_drift_psi{{feature="{name}"}} {value:.6f}'
            for name, value in sorted(report.feature_psi.items())
        ),
        "# HELP score_drift_psi Population stability index of the prediction score vs training.",
        "# TYPE score_drift_psi gauge",
        f"score_drift_psi {report.score_psi:.6f}",
        "# HELP drift_records Records in the last drift run.",
        "# TYPE drift_records gauge",
        f"drift_records {report.n_records}",
        "# HELP drift_last_run_timestamp_seconds When the drift job last completed.",
        "# TYPE drift_last_run_timestamp_seconds gauge",
        f"drift_last_run_timestamp_seconds {now:.0f}",
    ]
    return "\n".join(lines) + "\n"


def pushgateway_path() -> str:
    """Grouping key: one group per job and namespace, so environments never overwrite each other."""
    job = os.environ.get("DRIFT_PUSH_JOB", "drift")
    namespace = os.environ.get("POD_NAMESPACE", "default")
    return f"/metrics/job/{job}/namespace/{namespace}"


def push_metrics(url: str, body: str) -> None:
    """Push to a Prometheus Pushgateway with plain HTTP."""
    import urllib.request

    if not url.startswith(("http://", "https://")):
        raise ValueError(f"PUSHGATEWAY_URL must be an http(s) URL, got {url!r}")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        f"{url.rstrip('/')}{pushgateway_path()}",
        data=body.encode(),
        method="PUT",
        headers={"Content-Type": "text/plain; version=0.0.4"},
    )
    # Scheme checked above: http(s) only.
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # nosec B310
        if response.status >= 300:
            raise RuntimeError(f"Pushgateway answered {response.status}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="drift", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path, required=True, help="JSON-lines file or folder")
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("MODEL_DIR", "models")))
    parser.add_argument("--report", type=Path, default=Path("drift_report.json"))
    parser.add_argument(
        "--metrics-file", type=Path, help="write the gauges here (textfile collector)"
    )
    parser.add_argument(
        "--state", type=Path, default=Path(os.environ.get("DRIFT_STATE_PATH", "drift_state.json"))
    )
    parser.add_argument("--no-trigger", action="store_true", help="report only; never call GitLab")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    schema = FeatureSchema.load(args.models / SCHEMA_FILE)
    profile = ReferenceProfile.load(args.models / PROFILE_FILE)
    if profile.model_version != schema.model.get("version"):
        print(
            f"drift: {PROFILE_FILE} is for model {profile.model_version!r} but {SCHEMA_FILE} for "
            f"{schema.model.get('version')!r}: they come from different exports; run "
            "`dvc repro export` (or `dvc pull`)",
            file=sys.stderr,
        )
        return 2
    samples = list(read_samples(args.records))
    min_records = int(profile.drift["min_records"])
    if len(samples) < min_records:
        print(
            f"drift: {len(samples)} sampled records, "
            f"fewer than min_records={min_records}: no verdict",
            file=sys.stderr,
        )
        return 0
    report = compute_drift(profile, schema, samples)
    args.report.write_text(
        json.dumps(
            {**asdict(report), "max_psi": report.max_psi, "is_drift": report.is_drift}, indent=2
        )
        + "\n"
    )
    body = metrics_text(report, time.time())
    if args.metrics_file:
        args.metrics_file.write_text(body)
    if url := os.environ.get("PUSHGATEWAY_URL"):
        push_metrics(url, body)
    verdict = report.reason() if report.is_drift else f"no drift (max PSI {report.max_psi:.3f})"
    print(f"drift: {report.n_records} records, {verdict}")

    state = EpisodeState.load(args.state)
    if not report.is_drift:
        state.close()
        state.save(args.state)
        return 0
    if args.no_trigger:
        return 0
    if state.open_for(report.model_version):
        print(
            f"drift: retrain already triggered for this episode "
            f"(pipeline {state.pipeline_id}); not again"
        )
        return 0
    try:
        pipeline = trigger_retrain(TriggerConfig.from_env(), report.reason(), report.model_version)
    except TriggerError as exc:
        print(f"drift: could not trigger the retrain pipeline: {exc}", file=sys.stderr)
        return 1
    state.open(report.model_version, pipeline, report.reason())
    state.save(args.state)
    print(f"drift: triggered retrain pipeline {pipeline}")
    return 0
