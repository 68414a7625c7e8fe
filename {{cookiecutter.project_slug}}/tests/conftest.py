"""Fixtures shared by every test tier.

Nothing here needs a prior ``dvc repro``: projects are built from the repository's own
params.yaml with a small row count, through the same CLI commands ``dvc repro`` runs. Their raw
data are rows made from params.yaml's contract (``sample-data``), not the synthetic generator's:
the suite checks the team's contract, whatever data the team swapped in.
``trained_project`` is that project with every stage run once (shared, read-only);
``served_model_dir`` is its ``models/``, what the service loads.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from {{ cookiecutter.package_name }} import cli

REPO = Path(__file__).resolve().parents[1]
STAGES = ("sample-data", "prepare", "train", "evaluate", "export")
SMALL_ROWS = 2000


def small_params(**overrides: Any) -> dict[str, Any]:
    """The repository's params.yaml, shrunk to a fast sample on the CSV source."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params = copy.deepcopy(params)
    params["data"].update(source="csv", n_rows=SMALL_ROWS)
    # The sample is written inside the test's own folder: a data.path outside the repository
    # (an absolute path, an s3:// lake) is the team's data, never written by a test.
    path = str(params["data"]["path"])
    if Path(path).is_absolute() or "://" in path:
        params["data"]["path"] = "data/raw/sample.csv"
    params["contract"]["min_rows"] = 500
    params["export"]["parity_rows"] = 300
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split("__")
        block = params
        for key in parents:
            block = block[key]
        block[leaf] = value
    return params


def build(root: Path, params: dict[str, Any], stages: tuple[str, ...] = STAGES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in stages:
        assert cli.main([stage, "--root", str(root)]) == 0, stage
    return root


def _data_file_state() -> tuple[Path, bytes | None] | None:
    """The team's raw data file (params.yaml data.path) and its digest; None for a folder, a
    URI or a table."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    path = str(params["data"].get("path") or "")
    if not path or "://" in path:
        return None
    file = REPO / path  # an absolute data.path stays absolute
    if file.is_dir():
        return None
    return file, hashlib.sha256(file.read_bytes()).digest() if file.is_file() else None


@pytest.fixture(scope="session", autouse=True)
def team_data_is_untouched() -> Iterator[None]:
    """The suite never writes, replaces or deletes the team's data file, wherever data.path
    points: every test builds its rows in its own folder. Checked once, after the last test."""
    before = _data_file_state()
    yield
    if before is not None:
        after = _data_file_state()
        assert after == before, f"a test changed or removed {before[0]} (params.yaml data.path)"


@pytest.fixture(scope="session")
def make_params() -> Callable[..., dict[str, Any]]:
    """``make_params(**overrides)``: the small project's params (``small_params``), to write a
    project by hand."""
    return small_params


@pytest.fixture(scope="session")
def project_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``project_factory(name, stages=..., **overrides)`` → a project root with those stages run.

    Overrides use ``__`` for nesting: ``train__model="gradient_boosting"``.
    """

    def _build(name: str, stages: tuple[str, ...] = STAGES, **overrides: Any) -> Path:
        return build(tmp_path_factory.mktemp(name), small_params(**overrides), stages)

    return _build


@pytest.fixture(scope="session")
def trained_project(project_factory: Callable[..., Path]) -> Path:
    """Every stage run once on the default params (shared, read-only for the tests)."""
    return project_factory("trained")


@pytest.fixture(scope="session")
def served_model_dir(trained_project: Path) -> Path:
    """``models/`` of the trained small project: model.onnx, features.json, reference profile."""
    models = trained_project / "models"
    assert (models / "model.onnx").exists() and (models / "features.json").exists()
    return models
