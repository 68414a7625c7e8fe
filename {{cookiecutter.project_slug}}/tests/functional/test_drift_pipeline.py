"""Drift end to end: the exported reference profile + the drift command on realistic records."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from {{ cookiecutter.package_name }}.config import Params
from {{ cookiecutter.package_name }}.features import Encoder, FeatureSchema
from {{ cookiecutter.package_name }}.monitoring.drift import main


def raw_records(model_dir: Path) -> list[dict]:
    """The raw rows the pipeline trained on, as the API would receive them (strings and all)."""
    schema = FeatureSchema.load(model_dir / "features.json")
    raw = Params.load(model_dir.parent).read("data.path")
    with (model_dir.parent / raw).open() as handle:
        return [
            {name: row[name] or None for name in schema.names} for row in csv.DictReader(handle)
        ]


def sample_log(model_dir: Path, records: list[dict], path: Path) -> Path:
    """Score the records with the exported model and write them as the service's sample log."""
    schema = FeatureSchema.load(model_dir / "features.json")
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    matrix = Encoder(schema).encode_records(records)
    scores = session.run(["probabilities"], {schema.onnx_input: matrix})[0][:, 1]
    with path.open("w") as log:
        for record, score in zip(records, scores, strict=True):
            log.write(
                json.dumps(
                    {"event": "prediction_sample", "features": record, "p_hat": float(score)}
                )
                + "\n"
            )
    return path


def numeric_features(model_dir: Path) -> tuple[str, ...]:
    """Two plain numeric features of the contract (the ones the shift moves)."""
    schema = FeatureSchema.load(model_dir / "features.json")
    return tuple(f.name for f in schema.features if f.kind == "numeric")[:2]


def shifted(records: list[dict], columns: tuple[str, ...]) -> list[dict]:
    """A changed population: the given numeric features move up by two standard deviations."""
    spread = {
        name: float(np.nanstd([float(r[name]) for r in records if r[name] is not None]))
        for name in columns
    }
    return [
        {
            **record,
            **{
                name: float(record[name]) + 2 * spread[name]
                for name in columns
                if record[name] is not None
            },
        }
        for record in records
    ]


@pytest.fixture
def run_drift(served_model_dir, tmp_path):
    def _run(records: list[dict]) -> dict:
        log = sample_log(served_model_dir, records, tmp_path / "samples.jsonl")
        report = tmp_path / "report.json"
        args = ["--records", str(log), "--models", str(served_model_dir), "--report", str(report),
                "--state", str(tmp_path / "state.json"), "--no-trigger"]  # fmt: skip
        assert main(args) == 0
        return json.loads(report.read_text())

    return _run


def test_the_export_writes_a_reference_profile(served_model_dir):
    profile = json.loads((served_model_dir / "reference_profile.json").read_text())
    schema = FeatureSchema.load(served_model_dir / "features.json")
    assert set(profile["features"]) == set(schema.names)
    assert profile["model_version"] == schema.model["version"]
    assert abs(sum(profile["score"]["proportions"]) - 1.0) < 1e-9


def test_training_like_traffic_does_not_drift(served_model_dir, run_drift):
    report = run_drift(raw_records(served_model_dir)[:1500])
    assert not report["is_drift"], report["drifted"]


def test_shifted_traffic_drifts_on_the_shifted_features(served_model_dir, run_drift):
    columns = numeric_features(served_model_dir)
    assert columns, "the contract has no numeric feature to shift"
    records = shifted(raw_records(served_model_dir)[:1500], columns)
    report = run_drift(records)
    assert report["is_drift"]
    assert set(columns) <= set(report["drifted"])
