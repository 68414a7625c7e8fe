"""``engine: dask`` end to end on a two-worker LocalCluster, against the local engine.

A Hive-partitioned Parquet dataset (rows made from the contract, one folder per ``lake_part=``) goes
through prepare → train → evaluate → export with each engine, the stage commands as DVC runs
them; the Dask-trained model is then served (the service's ASGI app) and answers one record.
Both engines split the same rows (a hash of the id), so their test metrics compare directly:
LightGBM's and XGBoost's data-parallel training bins each feature on one worker's share of the
rows, so the two models differ a little, within ``ROC_AUC_TOLERANCE``.

Needs the ``dask`` dependency group (in default-groups of lightgbm and xgboost renders).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from starlette.testclient import TestClient

from {{ cookiecutter.package_name }}.pipeline.cluster import DASK_MODEL_FAMILIES
from {{ cookiecutter.package_name }}.pipeline.matrix import encode
from {{ cookiecutter.package_name }}.pipeline.trained import TrainedModel
from {{ cookiecutter.package_name }}.serving.app import create_app
from {{ cookiecutter.package_name }}.serving.config import Settings
from {{ cookiecutter.package_name }}.serving.service import Service

from dvc_support import REPO
from service_support import sample_row

pytestmark = pytest.mark.integration
distributed = pytest.importorskip("distributed", reason="the dask group is not installed")

ROWS = 20_000
PARTITIONS = 4  # Hive folders lake_part=0 ... lake_part=3: four partitions, two per worker
TREES = 60  # enough for a stable comparison, few enough to keep the test short
ROC_AUC_TOLERANCE = 0.02
STAGES = ("prepare", "train", "evaluate", "export")
KEY = "test-key-1"


def dask_overrides(lake: Path, engine: str, scheduler: str) -> dict[str, Any]:
    """project_factory's overrides: the lake as the source, the engine, fewer trees."""
    family = yaml.safe_load((REPO / "params.yaml").read_text())["train"]["model"]
    if family not in DASK_MODEL_FAMILIES:
        pytest.skip(f"train.model {family!r} has no Dask estimator ({DASK_MODEL_FAMILIES})")
    return {
        "data__source": "parquet",
        "data__path": str(lake),
        "engine": engine,
        "dask__scheduler": scheduler,
        f"train__{family}__n_estimators": TREES,
    }


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """One two-worker LocalCluster for every stage (as a cluster the stages connect to through
    dask.scheduler): starting worker processes per stage would double the test's time."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit="1GB", dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def lake(project_factory: Callable[..., Path]) -> Path:
    """ROWS rows made from the contract, as raw text, in PARTITIONS Hive partitions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = project_factory("lake", ("sample-data",), data__n_rows=ROWS, data__path="rows.csv")
    rows = pd.read_csv(root / "rows.csv", dtype=str, keep_default_na=False, na_values=[""])
    rows["lake_part"] = [str(i % PARTITIONS) for i in range(len(rows))]
    dataset = root / "transactions"
    pq.write_to_dataset(pa.Table.from_pandas(rows, preserve_index=False), dataset, ["lake_part"])
    return dataset


@pytest.fixture(scope="module")
def projects(lake: Path, scheduler: str, project_factory: Callable[..., Path]) -> dict[str, Path]:
    return {
        engine: project_factory(engine, STAGES, **dask_overrides(lake, engine, scheduler))
        for engine in ("local", "dask")
    }


def metrics(root: Path) -> dict[str, float]:
    return json.loads((root / "reports" / "metrics.json").read_text())


def test_dask_trains_the_same_kind_of_model_as_the_local_engine(projects) -> None:
    local, dask = (TrainedModel.load(p / "models" / "model.pkl") for p in projects.values())
    assert local.estimator == dask.estimator  # e.g. SimpleImputer → LGBMClassifier
    assert local.rows == dask.rows  # the same hash split of the same rows
    assert dask.schema.features == local.schema.features
    assert (projects["dask"] / "data" / "prepared" / "train.parquet").is_dir()  # one file a part


def test_dask_metrics_are_within_the_tolerance_of_the_local_engine(projects) -> None:
    local, dask = metrics(projects["local"]), metrics(projects["dask"])
    assert local["n"] == dask["n"]
    assert abs(dask["roc_auc"] - local["roc_auc"]) <= ROC_AUC_TOLERANCE, (local, dask)
    assert dask["roc_auc"] > 0.6  # it learned the signal the sample rows carry


def test_the_dask_model_passes_parity_and_has_a_reference_profile(projects) -> None:
    root = projects["dask"]
    parity = json.loads((root / "reports" / "parity.json").read_text())
    assert parity["max_abs_diff"] <= parity["atol"]
    local = json.loads((projects["local"] / "models" / "reference_profile.json").read_text())
    merged = json.loads((root / "models" / "reference_profile.json").read_text())
    assert merged["n_rows"] == local["n_rows"]
    assert merged["features"].keys() == local["features"].keys()


def test_the_dask_model_is_served(projects) -> None:
    models = projects["dask"] / "models"
    service = Service(Settings(model_dir=models, api_keys=(KEY,)))
    service.load()
    body = sample_row(models)
    with TestClient(create_app(service)) as client:
        response = client.post("/v1/predict", content=body, headers={"X-API-Key": KEY})
    assert response.status_code == 200, response.text
    trained = TrainedModel.load(models / "model.pkl")
    record = pd.DataFrame([json.loads(body)])
    expected = trained.pipeline.predict_proba(encode(record, trained.schema))[0, 1]
    assert response.json()["p_hat"] == pytest.approx(float(expected), abs=1e-4)


def test_a_rerun_in_another_process_gives_the_same_model_bytes(projects) -> None:
    """Fixed data, partitions, dask.n_workers and one thread a worker: the same model.pkl,
    whatever the process's string hashing (which orders Dask's sets)."""
    root = projects["dask"]
    first = (root / "models" / "model.pkl").read_bytes()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}.cli", "train", "--root", str(root)]
    subprocess.run(command, check=True, env=env, capture_output=True)
    assert (root / "models" / "model.pkl").read_bytes() == first
