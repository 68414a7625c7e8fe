"""A small partitioned Parquet lake made from the contract, and projects that prepare it.

The rows are ``sample`` rows (the team's own columns); ``dt=`` partition folders split them by id
(the first quarter on 2024-06-01, ...), and a ``system`` column that the contract does not name
rides along in the files, as a warehouse export's bookkeeping columns do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.config import Params, read_split
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.data.sample import sample

DAYS = ("2024-06-01", "2024-06-02", "2024-06-03", "2024-06-04")
LAKE = "data/lake"


def lake_rows(contract: Contract, n_rows: int, seed: int = 11) -> pd.DataFrame:
    """Raw rows with their ``dt`` partition and an extra ``system`` column."""
    frame = sample(contract, n_rows, seed=seed)
    quarter = (pd.Series(range(n_rows)) * len(DAYS) // n_rows).to_numpy()
    return frame.assign(system="pos", dt=[DAYS[q] for q in quarter])


def write_lake(frame: pd.DataFrame, folder: Path, filesystem: Any = None) -> None:
    """``frame`` as a Hive-partitioned dataset (``dt=.../part-0.parquet``), row order kept."""
    for day, rows in frame.groupby("dt", sort=True):
        table = pa.Table.from_pandas(rows.drop(columns="dt"), preserve_index=False)
        path = f"{folder}/dt={day}/part-0.parquet"
        if filesystem is None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, filesystem=filesystem)


def prepared(root: Path, params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Run ``prepare`` on ``root`` with ``params``; the three splits."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert cli.main(["prepare", "--root", str(root)]) == 0
    loaded = Params.load(root)
    labels = Contract.from_params(loaded.read("contract")).label_columns()
    return {
        name: read_split(loaded.path(f"{name}_split"), labels)
        for name in ("train", "valid", "test")
    }
