"""The parquet source on S3 (``data.path: s3://bucket/prefix``), against moto's S3 server on
127.0.0.1: pyarrow's own S3 filesystem, pointed there by ``AWS_ENDPOINT_URL`` as a team would point
it at MinIO. The same lake on S3 and in a local folder gives the same splits, on either engine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import boto3
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.data.lake import filesystem
from {{ cookiecutter.package_name }}.pipeline.splits import SPLITS

from lake_support import DAYS, LAKE, lake_rows, prepared, write_lake
from s3_support import REGION, aws_env, endpoint  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

BUCKET = "lake-test"
URI = f"s3://{BUCKET}/exports/transactions"
ROWS = 1600
FILTER = [["dt", "<=", DAYS[2]]]


@pytest.fixture
def s3_lake(
    endpoint: str,  # noqa: F811 (the fixture imported from s3_support)
    aws_env: dict[str, str],  # noqa: F811
    monkeypatch,
    make_params,
) -> pd.DataFrame:
    """The lake's rows, written to the bucket through pyarrow's S3 filesystem."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    rows = lake_rows(Contract.from_params(make_params()["contract"]), ROWS)
    fs, path = filesystem(URI)
    write_lake(rows, path, filesystem=fs)
    return rows


def test_a_lake_on_s3_prepares_like_the_same_lake_in_a_folder(
    s3_lake: pd.DataFrame, tmp_path: Path, make_params
) -> None:
    on_s3 = prepared(
        tmp_path / "s3",
        make_params(data__source="parquet", data__path=URI, data__partitions=FILTER),
    )
    write_lake(s3_lake, tmp_path / "local" / LAKE)
    local = prepared(
        tmp_path / "local",
        make_params(data__source="parquet", data__path=LAKE, data__partitions=FILTER),
    )
    assert sum(len(frame) for frame in on_s3.values()) == (s3_lake["dt"] <= DAYS[2]).sum()
    for name in SPLITS:
        pd.testing.assert_frame_equal(on_s3[name], local[name])


def test_a_prefix_with_nothing_in_it_is_a_clear_error(
    s3_lake: pd.DataFrame, tmp_path: Path, make_params, capsys
) -> None:
    params = make_params(data__source="parquet", data__path=f"s3://{BUCKET}/no/such/prefix")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["prepare", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("prepare: error: ") and "s3://" in err and "Traceback" not in err


@pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None, reason="the dask group is not installed"
)
def test_the_dask_engine_reads_the_lake_on_s3(
    s3_lake: pd.DataFrame, tmp_path: Path, make_params
) -> None:
    from distributed import LocalCluster

    params = make_params(data__source="parquet", data__path=URI, data__partitions=FILTER)
    local = prepared(tmp_path / "local", params)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        params["engine"] = "dask"
        params["dask"]["scheduler"] = cluster.scheduler_address
        on_dask = prepared(tmp_path / "dask", params)
    contract = Contract.from_params(params["contract"])
    for name in SPLITS:
        frame = on_dask[name]
        if contract.id:
            frame = frame.sort_values(contract.id).reset_index(drop=True)
        pd.testing.assert_frame_equal(frame, local[name])
