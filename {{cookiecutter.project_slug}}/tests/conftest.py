"""Fixtures shared by every test tier.

``served_model_dir``: a real ``model.onnx`` + ``features.json`` made once per session by the
project's own pipeline stages (generate → prepare → train → evaluate → export) on a small
sample in a tmp dir, so the service tests never need a prior ``dvc repro``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.pipeline.config import Paths

REPO = Path(__file__).resolve().parents[1]
SERVED_MODEL_STAGES = ("generate-data", "prepare", "train", "evaluate", "export")


@pytest.fixture(scope="session")
def served_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``models/`` of a freshly trained small project: what the service loads."""
    root = tmp_path_factory.mktemp("served-model")
    params = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    params["data"].update(source="csv", n_rows=2000)
    params["contract"]["min_rows"] = 500
    params["export"]["parity_rows"] = 300
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in SERVED_MODEL_STAGES:
        assert cli.main([stage, "--root", str(root)]) == 0, f"pipeline stage {stage} failed"
    paths = Paths(root)
    assert paths.model_onnx.exists() and paths.feature_schema.exists()
    return paths.model_onnx.parent
