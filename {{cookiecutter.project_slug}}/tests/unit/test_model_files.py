"""The served model is all-or-nothing: the service loads model.onnx + features.json only as the
unit one export wrote, and an export that stops half-way never serves a new threshold under the
old version.

Each refusal is a `ModelError` naming the file and the fix, never an AttributeError or TypeError.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from {{ cookiecutter.package_name }} import model_files
from {{ cookiecutter.package_name }}.features import Feature, FeatureSchema
from {{ cookiecutter.package_name }}.model_files import (
    ONNX_FILE,
    PROFILE_FILE,
    SCHEMA_FILE,
    SCRATCH,
    publishing,
)
from {{ cookiecutter.package_name }}.monitoring.profile import ReferenceProfile
from {{ cookiecutter.package_name }}.pipeline.export import to_onnx
from {{ cookiecutter.package_name }}.serving.model import Model, ModelError, load_schema

FEATURES = (
    Feature("amount", "money"),
    Feature("n", "numeric"),
    Feature("day", "categorical", categories=("Mon", "Tue")),
)
FIX = "dvc repro export"


class Killed(BaseException):
    """What a SIGKILL or SIGINT between two renames looks like to the code after it."""


def fitted(seed: int) -> tuple[Any, np.ndarray]:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(200, 4)).astype(np.float32)
    y = (matrix[:, 0] + rng.normal(size=200) > 0).astype("int64")
    return LogisticRegression(random_state=seed).fit(matrix, y), matrix


def export_to(folder: Path, threshold: float = 0.5, seed: int = 0) -> FeatureSchema:
    """What the export stage does, on a tiny model: ONNX, schema and profile, published."""
    model, matrix = fitted(seed)
    schema = FeatureSchema(FEATURES, threshold=threshold, threshold_policy={"policy": "fixed"})
    onnx = to_onnx(model, schema, 17)
    shipped = schema.exported(
        hashlib.sha256(onnx).hexdigest(), "1.2.3", {"family": "test"}, {"roc_auc": 0.75}
    )
    scores = model.predict_proba(matrix)[:, 1]
    settings = {"psi_threshold": 0.2, "min_records": 10.0}
    folder.mkdir(parents=True, exist_ok=True)
    with publishing(folder) as scratch:
        (scratch / ONNX_FILE).write_bytes(onnx)
        ReferenceProfile.build(shipped, matrix, scores, settings).save(scratch / PROFILE_FILE)
        shipped.save(scratch / SCHEMA_FILE)
    return shipped


def snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in model_files.FILES}


@pytest.fixture
def models(tmp_path: Path) -> Path:
    export_to(tmp_path / "models")
    return tmp_path / "models"


def edit_schema(models: Path, change) -> None:
    """Edit features.json as a person (or a broken copy) would: the JSON, not the schema."""
    path = models / SCHEMA_FILE
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def refused(models: Path, *fragments: str) -> str:
    with pytest.raises(ModelError) as caught:
        Model.load(models)
    message = str(caught.value)
    assert FIX in message or "dvc pull" in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_an_exported_folder_loads_and_reports_its_version(models: Path) -> None:
    model = Model.load(models)
    schema = load_schema(models)
    assert model.version == schema.model["version"]
    assert model.version.startswith("1.2.3+") and len(model.version) == len("1.2.3+") + 12
    assert model.sha256 == hashlib.sha256((models / ONNX_FILE).read_bytes()).hexdigest()
    info = model.info()
    assert (info["version"], info["threshold"], info["n_inputs"]) == (model.version, 0.5, 4)
    assert not (models / SCRATCH).exists()


def test_the_version_changes_with_the_threshold_and_with_the_onnx_bytes(models: Path) -> None:
    schema = load_schema(models)
    onnx = schema.model["sha256"]
    moved = replace(schema, threshold=0.6)
    assert moved.model_version(onnx, "1.2.3") != schema.model["version"]
    assert schema.model_version("0" * 64, "1.2.3") != schema.model["version"]
    # ... and not with the metadata: the same model and threshold keep their version.
    same = replace(schema, metrics={"roc_auc": 0.5}, model={"family": "other"})
    assert same.model_version(onnx, "1.2.3") == schema.model["version"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda data: [], "Expected `object`, got `array`"),
        (lambda data: None, "Expected `object`, got `null`"),
        (lambda data: {k: v for k, v in data.items() if k != "threshold"}, "`threshold`"),
        (lambda data: {**data, "threshold": None}, "got `null` - at `$.threshold`"),
        (lambda data: {**data, "features": [{"name": "n"}]}, "at `$.features[0]`"),
        (lambda data: {**data, "threshold": 0.25}, "checksum does not match"),
        (lambda data: {**data, "model": {"family": "test"}}, "checksum does not match"),
        (lambda data: {k: v for k, v in data.items() if k != "checksum"}, "has no checksum"),
        (lambda data: {**data, "schema_version": 1}, "version 1 is not 2"),
    ],
    ids=[
        "array",
        "null",
        "no-threshold",
        "null-threshold",
        "bad-feature",
        "edited-threshold",
        "sha256-deleted",
        "no-checksum",
        "old-format",
    ],
)
def test_a_broken_schema_is_refused_naming_the_file(models: Path, change, reason: str) -> None:
    edit_schema(models, change)
    refused(models, str(models / SCHEMA_FILE), reason)


def test_a_truncated_schema_is_refused(models: Path) -> None:
    path = models / SCHEMA_FILE
    path.write_bytes(path.read_bytes()[:200])
    refused(models, str(path), "not valid JSON")


def test_a_schema_without_the_onnx_hash_is_refused_even_with_a_fresh_checksum(models) -> None:
    schema = load_schema(models)
    replace(schema, model={"family": "test", "version": schema.model["version"]}).save(
        models / SCHEMA_FILE
    )
    refused(models, "no model.sha256")


def test_a_version_that_does_not_cover_the_schema_is_refused(models: Path) -> None:
    """A threshold changed with a fresh checksum but the old version: not served."""
    schema = load_schema(models)
    replace(schema, threshold=0.3).save(models / SCHEMA_FILE)
    refused(models, "model.version", "does not cover")


def test_an_onnx_file_from_another_export_is_refused(models: Path, tmp_path: Path) -> None:
    export_to(tmp_path / "other", seed=1)
    (models / ONNX_FILE).write_bytes((tmp_path / "other" / ONNX_FILE).read_bytes())
    refused(models, str(models / ONNX_FILE), "different exports")


def test_a_corrupt_onnx_file_is_refused(models: Path) -> None:
    garbage = b"not an onnx model"
    schema = load_schema(models)
    code_version = schema.model["version"].rpartition("+")[0]
    schema.exported(
        hashlib.sha256(garbage).hexdigest(), code_version, schema.model, schema.metrics
    ).save(models / SCHEMA_FILE)
    (models / ONNX_FILE).write_bytes(garbage)
    refused(models, "ONNX Runtime cannot load", str(models / ONNX_FILE))


@pytest.mark.parametrize("name", [SCHEMA_FILE, ONNX_FILE])
def test_a_missing_file_is_refused(models: Path, name: str) -> None:
    (models / name).unlink()
    refused(models, f"cannot read {models / name}")


def test_an_export_that_fails_before_publishing_changes_nothing(models: Path) -> None:
    before = snapshot(models)
    with pytest.raises(RuntimeError, match="parity"), publishing(models) as scratch:
        (scratch / ONNX_FILE).write_bytes(b"half")
        raise RuntimeError("parity check failed")
    assert snapshot(models) == before
    assert not (models / SCRATCH).exists()
    with pytest.raises(FileNotFoundError, match=SCHEMA_FILE), publishing(models) as scratch:
        (scratch / ONNX_FILE).write_bytes(b"half")
        (scratch / PROFILE_FILE).write_text("{}")
    assert snapshot(models) == before


@pytest.mark.parametrize("stop_at", range(len(model_files.FILES)))
def test_an_export_killed_between_files_never_serves_a_new_threshold_under_the_old_version(
    models: Path, monkeypatch: pytest.MonkeyPatch, stop_at: int
) -> None:
    old = Model.load(models)
    real_replace, calls = os.replace, []

    def replace_then_die(src, dst):
        if len(calls) == stop_at:
            raise Killed
        calls.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(model_files.os, "replace", replace_then_die)
    with pytest.raises(Killed):
        export_to(models, threshold=0.7, seed=2)
    monkeypatch.undo()
    try:
        served = Model.load(models)
    except ModelError as exc:
        assert stop_at > 0 and "different exports" in str(exc), exc  # some new files, refused
    else:
        assert stop_at == 0  # nothing renamed yet: the previous model, whole
        assert (served.version, served.schema.threshold) == (old.version, old.schema.threshold)
    # The next export (nothing in the way) publishes the new model whole.
    export_to(models, threshold=0.7, seed=2)
    new = Model.load(models)
    assert new.schema.threshold == 0.7 and new.version != old.version
    assert not (models / SCRATCH).exists()


def test_a_scratch_folder_left_by_a_killed_export_is_cleared(models: Path) -> None:
    (models / SCRATCH).mkdir()
    (models / SCRATCH / ONNX_FILE).write_bytes(b"stale")
    export_to(models, threshold=0.4)
    assert Model.load(models).schema.threshold == 0.4
    assert not (models / SCRATCH).exists()
