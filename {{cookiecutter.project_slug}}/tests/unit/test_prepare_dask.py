"""``prepare`` with ``engine: dask`` on a two-worker LocalCluster gives the local engine's splits
and the local engine's messages, on the same partitioned Parquet lake.

Needs the ``dask`` dependency group (in default-groups of lightgbm and xgboost projects).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.pipeline.splits import SPLITS

from lake_support import DAYS, LAKE, lake_rows, prepared, write_lake

pytest.importorskip("dask.dataframe", reason="the dask group is not installed")
pytest.importorskip("distributed", reason="the dask group is not installed")

ROWS = 2400


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A two-worker cluster in this process (threads: quick to start), shared by the module;
    the projects reach it through dask.scheduler, as they would a cluster's scheduler service."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


def both_engines(tmp_path: Path, make_params, scheduler: str, rows: pd.DataFrame) -> list[Path]:
    """The same lake in two projects, one per engine."""
    roots = []
    for engine in ("local", "dask"):
        root = tmp_path / engine
        write_lake(rows, root / LAKE)
        params = make_params(data__source="parquet", data__path=LAKE, engine=engine)
        params["dask"].update(scheduler=scheduler, partition_rows=1000)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        roots.append(root)
    return roots


def contract_of(make_params) -> Contract:
    return Contract.from_params(make_params()["contract"])


def test_dask_splits_hold_the_local_splits_rows(tmp_path: Path, make_params, scheduler) -> None:
    contract = contract_of(make_params)
    rows = lake_rows(contract, ROWS)
    local_root, dask_root = both_engines(tmp_path, make_params, scheduler, rows)
    params = yaml.safe_load((local_root / "params.yaml").read_text())
    local = prepared(local_root, params)
    on_dask = prepared(dask_root, {**params, "engine": "dask"})
    # A folder per split, one file per partition (a dt= folder) that has rows of it.
    train = dask_root / params["paths"]["train_split"]
    assert train.is_dir() and 1 < len(list(train.glob("part-*.parquet"))) <= len(DAYS)
    for name in SPLITS:
        if contract.id:
            on_dask[name] = on_dask[name].sort_values(contract.id).reset_index(drop=True)
        pd.testing.assert_frame_equal(on_dask[name], local[name])


def test_a_csv_file_on_dask_splits_like_the_local_engine(
    tmp_path: Path, make_params, scheduler
) -> None:
    """A CSV file is read in blocks of about dask.partition_rows rows (at least 64 KiB each, so
    a narrow table gets more rows: enough here for three blocks or so, whatever the contract)."""
    contract = contract_of(make_params)
    rows = lake_rows(contract, ROWS).drop(columns=["dt", "system"])
    row_bytes = len(rows.to_csv(index=False).encode()) / len(rows)
    n_rows = max(ROWS, int(3.5 * (1 << 16) / row_bytes))
    rows = lake_rows(contract, n_rows).drop(columns=["dt", "system"])
    params = make_params()
    params["dask"].update(scheduler=scheduler, partition_rows=1000)
    splits = {}
    for engine in ("local", "dask"):
        path = tmp_path / engine / params["data"]["path"]
        path.parent.mkdir(parents=True)
        rows.to_csv(path, index=False)
        splits[engine] = prepared(tmp_path / engine, {**params, "engine": engine})
    train = tmp_path / "dask" / params["paths"]["train_split"]
    assert len(list(train.glob("part-*.parquet"))) > 1
    for name in SPLITS:
        frame = splits["dask"][name]
        if contract.id:
            frame = frame.sort_values(contract.id).reset_index(drop=True)
        pd.testing.assert_frame_equal(frame, splits["local"][name])


def failures(roots: list[Path], capsys) -> list[str]:
    messages = []
    for root in roots:
        assert cli.main(["prepare", "--root", str(root)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("prepare: error: ") and "Traceback" not in err
        assert not (root / "data" / "prepared").exists() or not any(
            (root / "data" / "prepared").iterdir()
        )
        messages.append(err)
    return messages


def test_violations_spread_over_partitions_are_reported_once_like_the_local_engine(
    tmp_path: Path, make_params, scheduler, capsys
) -> None:
    contract = contract_of(make_params)
    rows = lake_rows(contract, ROWS)
    quarter = ROWS // len(DAYS)
    # Bad labels in the 2nd and 4th partitions, the same id in the 1st and the 3rd.
    for row in (quarter + 5, 3 * quarter + 7):
        rows.loc[row, contract.target] = 3
    if contract.id:
        rows.loc[2 * quarter + 1, contract.id] = rows.loc[4, contract.id]
    local, on_dask = failures(both_engines(tmp_path, make_params, scheduler, rows), capsys)
    assert local == on_dask
    assert f"must be 0 or 1, e.g. 3 (row {quarter + 5})" in local
    assert local.count("must be 0 or 1") == 1
    if contract.id:
        repeated = rows.loc[4, contract.id].item()
        assert f"is not unique, e.g. {repeated!r} (row {2 * quarter + 1})" in local


def test_a_value_cleaning_cannot_read_names_its_row_in_the_source(
    tmp_path: Path, make_params, scheduler, capsys
) -> None:
    contract = contract_of(make_params)
    if not contract.money:
        pytest.skip("the contract has no money column")
    rows = lake_rows(contract, ROWS)
    row = 2 * (ROWS // len(DAYS)) + 3  # in the third partition
    rows[contract.money[0]] = rows[contract.money[0]].astype(object)
    rows.loc[row, contract.money[0]] = "twelve dollars"
    local, on_dask = failures(both_engines(tmp_path, make_params, scheduler, rows), capsys)
    assert local == on_dask and f"(row {row})" in local and "'twelve dollars'" in local
