"""The parquet source (a partitioned lake), reading in chunks, and the hash-of-id split.

Every project here is written by hand from rows made from params.yaml's contract, so the checks
hold for the team's own columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.config import read_split
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.data.lake import location
from {{ cookiecutter.package_name }}.data.sources import DataSourceError, iter_raw
from {{ cookiecutter.package_name }}.pipeline.splits import SPLITS, assign, conform, write_all

from lake_support import DAYS, LAKE, lake_rows, prepared, write_lake

ROWS = 2000


def lake_project(root: Path, make_params, rows: pd.DataFrame | None = None, **overrides):
    params = make_params(data__source="parquet", data__path=LAKE, **overrides)
    contract = Contract.from_params(params["contract"])
    write_lake(lake_rows(contract, ROWS) if rows is None else rows, root / LAKE)
    return params, contract


def csv_project(root: Path, make_params, rows: pd.DataFrame, **overrides):
    params = make_params(**overrides)
    path = root / params["data"]["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(path, index=False)
    return params


def test_a_partitioned_lake_prepares_like_the_same_rows_in_a_csv_file(
    tmp_path: Path, make_params
) -> None:
    params, contract = lake_project(
        tmp_path / "lake", make_params, data__partitions=[["dt", ">=", DAYS[2]]]
    )
    lake = prepared(tmp_path / "lake", params)
    rows = lake_rows(contract, ROWS)
    kept = rows[rows["dt"] >= DAYS[2]].drop(columns=["dt", "system"])
    from_csv = prepared(tmp_path / "csv", csv_project(tmp_path / "csv", make_params, kept))
    assert sum(len(frame) for frame in lake.values()) == len(kept) < ROWS
    for name in SPLITS:
        # Only the contract's columns: the dt partition and the system column stay in the lake.
        assert not {"dt", "system"} & set(lake[name].columns)
        pd.testing.assert_frame_equal(lake[name], from_csv[name])


@pytest.mark.parametrize(
    ("partitions", "message"),
    [
        ("dt >= 2024-06-03", "data.partitions must be a list of [column, operator, value]"),
        ([["dt", "~", DAYS[0]]], "operator '~' is not one of"),
        ([["dt", "in", DAYS[0]]], "'in' needs a list of values"),
        ([["day", "=", DAYS[0]]], "filters on ['day'], which"),
        ([["dt", ">=", 20240603]], "quote values that are text"),
    ],
)
def test_bad_partition_filters_are_one_clear_error(
    tmp_path: Path, make_params, capsys, partitions, message
) -> None:
    params, _ = lake_project(tmp_path, make_params, data__partitions=partitions)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["prepare", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("prepare: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "data" / "prepared").exists()


def test_filters_that_keep_no_row_fail_the_row_count_not_the_reader(
    tmp_path: Path, make_params, capsys
) -> None:
    params, _ = lake_project(tmp_path, make_params, data__partitions=[["dt", ">", "2025"]])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["prepare", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "0 rows, the contract requires at least" in err and "is missing" not in err


def test_a_lake_that_is_not_there(tmp_path: Path, make_params, capsys) -> None:
    params = make_params(data__source="parquet", data__path="data/nowhere")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["prepare", "--root", str(tmp_path)]) == 1
    assert "data/nowhere does not exist" in capsys.readouterr().err


def test_data_path_is_a_uri_or_under_the_root(tmp_path: Path) -> None:
    assert location(tmp_path, "s3://bucket/lake/") == "s3://bucket/lake/"
    assert location(tmp_path, "data/lake") == tmp_path / "data" / "lake"
    contract = Contract(target="y")
    with pytest.raises(DataSourceError, match="the csv source reads a local file"):
        iter_raw("csv", contract, location="s3://bucket/t.csv")
    with pytest.raises(DataSourceError, match="gs:// scheme is not supported"):
        next(iter_raw("parquet", contract, location="gs://bucket/lake"))


def test_reading_in_chunks_changes_no_split_and_no_message(
    tmp_path: Path, make_params, capsys
) -> None:
    """Chunks of 150 rows give the same splits, byte for byte, as one chunk; a bad value deep in
    the data is reported with the same row either way (counted from the source's first row)."""
    contract = Contract.from_params(make_params()["contract"])
    rows = lake_rows(contract, ROWS).drop(columns=["dt", "system"])
    whole = csv_project(tmp_path / "whole", make_params, rows)
    prepared(tmp_path / "whole", whole)
    chunked = csv_project(tmp_path / "chunked", make_params, rows, data__chunk_rows=150)
    prepared(tmp_path / "chunked", chunked)
    for name in SPLITS:
        rel = Path(whole["paths"][f"{name}_split"])
        assert (tmp_path / "chunked" / rel).read_bytes() == (tmp_path / "whole" / rel).read_bytes()

    broken = rows.copy()
    broken.loc[1234, contract.target] = 3
    if contract.money:
        broken.loc[1500, contract.money[0]] = "$12,00,0.x"
    messages = []
    for name, chunk_rows in (("one", 10**6), ("many", 100)):
        params = csv_project(tmp_path / name, make_params, broken, data__chunk_rows=chunk_rows)
        (tmp_path / name / "params.yaml").write_text(yaml.safe_dump(params))
        assert cli.main(["prepare", "--root", str(tmp_path / name)]) == 1
        messages.append(capsys.readouterr().err)
    assert messages[0] == messages[1]
    assert "(row 1500)" in messages[0] if contract.money else "(row 1234)" in messages[0]


def test_a_rows_split_depends_on_its_id_and_the_seed_alone() -> None:
    block = {"seed": 7, "valid_size": 0.15, "test_size": 0.15}
    frame = pd.DataFrame({"id": np.arange(40_000), "v": 1.0})
    codes = assign(frame, "id", block)
    # Shares close to the configured ones (not exact: the split is not stratified).
    shares = np.bincount(codes, minlength=3) / len(frame)
    np.testing.assert_allclose(shares, [0.70, 0.15, 0.15], atol=0.01)
    # Any partitioning and order, and ids read as floats, give each row the same split.
    pieces = [frame.iloc[::-1][i::5] for i in range(5)]
    again = pd.concat(
        [
            piece.assign(code=assign(piece.astype({"id": "float64"}), "id", block))
            for piece in pieces
        ]
    ).sort_values("id")
    assert (again["code"].to_numpy() == codes).all()
    # Another seed, another split; text ids split too.
    assert (assign(frame, "id", {**block, "seed": 8}) != codes).mean() > 0.3
    text = assign(frame.astype({"id": str}), "id", block)
    assert (
        set(np.unique(text)) == {0, 1, 2}
        and (text == assign(frame.astype({"id": str}), "id", block)).all()
    )


def test_prepared_splits_keep_their_dtypes(tmp_path: Path) -> None:
    contract = Contract(
        target="y", id="id", group="g", features=("code", "x"), categorical={"code": ("01", "NA")}
    )
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "y": [0, 1, 0],
            "g": [None, None, None],  # a chunk without a single group value is still text
            "code": ["01", "NA", None],
            "x": [1, 2, 3],
        }
    )
    path = tmp_path / "train.parquet"
    write_all({path: conform(frame, contract)}, contract.label_columns())
    back = read_split(path, contract.label_columns())
    assert back["code"].tolist()[:2] == ["01", "NA"] and pd.isna(back["code"][2])
    assert back["code"].dtype == object and back["g"].dtype == object
    assert back["x"].dtype == "float64" and back["y"].dtype == "int64"


def test_contract_init_reads_a_partitioned_parquet_folder(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    contract = Contract.from_params({**params["contract"], "min_rows": 100})
    rows = lake_rows(contract, ROWS).drop(columns="system")
    write_lake(rows, tmp_path / LAKE)
    (tmp_path / "params.yaml").write_text((repo / "params.yaml").read_text())
    init = [
        "contract",
        "init",
        "--data",
        LAKE,
        "--target",
        contract.target,
        "--root",
        str(tmp_path),
    ]
    if contract.id:
        init += ["--id", contract.id]
    if contract.group:
        init += ["--group", contract.group]
    assert cli.main(init) == 0
    written = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert written["data"]["source"] == "parquet" and written["data"]["path"] == LAKE
    assert "dt" not in written["contract"]["features"]  # a partition folder, not a column
    assert cli.main(["prepare", "--root", str(tmp_path)]) == 0
