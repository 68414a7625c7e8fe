"""The exploration notebook runs top to bottom against a freshly trained small project."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from {{ cookiecutter.package_name }}.config import Params

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "1.0-mlops-explore-data.ipynb"


def test_notebook_executes(trained_project: Path, monkeypatch) -> None:
    monkeypatch.setenv("PROJECT_ROOT", str(trained_project))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "".join(
        str(out.get("data", {}).get("text/plain", "")) + out.get("text", "") for out in outputs
    )
    groups = Params.load(trained_project).read("contract").get("groups") or ()
    assert "roc_auc" in text and all(str(group) in text for group in groups)
    assert os.fspath(trained_project) in text  # it really read the project it was pointed at
