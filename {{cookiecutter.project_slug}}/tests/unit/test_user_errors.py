"""A user's mistake in the pipeline is one message with the fix, exit 1, no traceback, and no
output for a later stage to pick up."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.data.sample import sample
from {{ cookiecutter.package_name }}.pipeline import splits
from {{ cookiecutter.package_name }}.pipeline.splits import SPLITS, publish, to_arrow, write_all

REPO = Path(__file__).resolve().parents[2]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
RAW = "data/raw/sample.csv"


def project(root: Path, frame_change=None, **data) -> Path:
    """A project whose raw data are rows made from the contract (changed by ``frame_change``)."""
    # The rows go inside ``root``, wherever the team's data.path points: a test never writes
    # (or deletes) the team's own data file.
    params = {**PARAMS, "data": {**PARAMS["data"], "source": "csv", "path": RAW, **data}}
    params["contract"] = {**PARAMS["contract"], "min_rows": 50}
    contract = Contract.from_params(params["contract"])
    frame = sample(contract, 200, seed=9)
    if frame_change is not None:
        frame = frame_change(frame, contract)
    raw = root / params["data"]["path"]
    raw.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(raw, index=False)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def failing_prepare(root: Path, capsys) -> str:
    assert cli.main(["prepare", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("prepare: error: ") and "Traceback" not in err
    assert not (root / PARAMS["paths"]["train_split"]).exists()
    return err


def test_a_target_that_is_not_binary(tmp_path: Path, capsys) -> None:
    def change(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
        frame.loc[4, contract.target] = 3
        return frame

    err = failing_prepare(project(tmp_path, change), capsys)
    assert "must be 0 or 1" in err and "(row 4)" in err


def test_a_glob_matching_nothing(tmp_path: Path, capsys) -> None:
    root = project(tmp_path)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["contract"].update(features="feature_*", money=[], percent=[], categorical={})
    params["contract"]["ranges"] = {}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert "matches no column" in failing_prepare(root, capsys)


def test_a_missing_data_url(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DATA_URL", raising=False)
    root = project(tmp_path, source="sql")
    err = failing_prepare(root, capsys)
    assert "DATA_URL is not set" in err and "export it" in err


def test_a_missing_raw_file(tmp_path: Path, capsys) -> None:
    root = project(tmp_path)
    (root / RAW).unlink()
    assert "does not exist" in failing_prepare(root, capsys)


def test_no_or_broken_params_yaml(tmp_path: Path, capsys) -> None:
    assert "params.yaml not found" in failing_prepare(tmp_path, capsys)
    (tmp_path / "params.yaml").write_text("data: [unclosed\n")
    assert "is not valid YAML" in failing_prepare(tmp_path, capsys)


def test_splits_are_written_all_or_none(tmp_path: Path, monkeypatch) -> None:
    paths = [tmp_path / "prepared" / f"{name}.parquet" for name in SPLITS]
    write_all(dict.fromkeys(paths, pd.DataFrame({"a": [1, 2]})), [])
    before = [path.read_bytes() for path in paths]
    written = []

    def full_disk_on_the_third_file(frame, text_columns):
        written.append(frame)
        if len(written) == 3:
            raise OSError("No space left on device")
        return to_arrow(frame, text_columns)

    monkeypatch.setattr(splits, "to_arrow", full_disk_on_the_third_file)
    with pytest.raises(OSError, match="No space"):
        write_all(dict.fromkeys(paths, pd.DataFrame({"a": [3]})), [])
    assert [path.read_bytes() for path in paths] == before  # the previous splits, untouched
    left = sorted(p.name for p in (tmp_path / "prepared").iterdir())
    assert left == sorted(p.name for p in paths)  # and no temporary file


def test_a_folder_split_replaces_a_file_split_or_nothing_moves(tmp_path: Path) -> None:
    """The dask engine publishes a folder per split where the local engine left a file."""
    paths = [tmp_path / f"{name}.parquet" for name in SPLITS]
    write_all(dict.fromkeys(paths, pd.DataFrame({"a": [1]})), [])
    folders = {path: tmp_path / f".{path.name}.parts" for path in paths}
    for folder in folders.values():
        folder.mkdir()
        (folder / "part-000000.parquet").write_bytes(b"new")
    missing = dict(folders)
    missing[paths[2]] = tmp_path / "never-written"
    with pytest.raises(FileNotFoundError):
        publish(missing)
    assert all(path.is_file() for path in paths)  # the file splits are back
    publish(folders)
    assert all((path / "part-000000.parquet").read_bytes() == b"new" for path in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
