"""pipeline/cluster.py: params.yaml's engine and dask block, and the client they give."""

from __future__ import annotations

import importlib

import pytest

from {{ cookiecutter.package_name }}.config import Params, UserError
from {{ cookiecutter.package_name }}.pipeline import cluster

DASK_BLOCK = {"scheduler": "", "n_workers": 2, "threads_per_worker": 1, "memory_limit": "512MB"}


def params(**overrides: object) -> Params:
    values = {"engine": "dask", "dask": dict(DASK_BLOCK)}
    values.update(overrides)
    return Params(values)


def test_engine_is_local_or_dask() -> None:
    assert cluster.engine(params(engine="local")) == "local"
    assert cluster.engine(params()) == "dask"
    with pytest.raises(UserError, match=r"engine is 'spark': use one of local, dask"):
        cluster.engine(params(engine="spark"))


def test_only_families_with_a_dask_estimator_train_on_dask() -> None:
    for family in cluster.DASK_MODEL_FAMILIES:
        cluster.require_dask_family(family)
    with pytest.raises(UserError, match=r"not 'catboost'.*engine: local"):
        cluster.require_dask_family("catboost")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("n_workers", 0, r"dask.n_workers is 0: use a whole number"),
        ("threads_per_worker", "2", r"dask.threads_per_worker is '2'"),
        ("scheduler", 8786, r"dask.scheduler is 8786: use an address"),
    ],
)
def test_a_wrong_dask_block_names_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(UserError, match=message):
        cluster.DaskSettings.from_params({**DASK_BLOCK, key: value})


def test_a_missing_dask_group_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def without_dask(name: str, *args: object) -> object:
        if name.split(".")[0] in {"dask", "distributed"}:
            raise ModuleNotFoundError(name)
        return real_import(name, *args)

    monkeypatch.setattr(cluster.importlib, "import_module", without_dask)
    with (
        pytest.raises(UserError, match=r"dask dependency group.*default-groups"),
        cluster.dask_client(params()),
    ):
        pass


def test_an_empty_scheduler_starts_a_local_cluster_sized_from_params(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("distributed", reason="the dask group is not in default-groups")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with cluster.dask_client(params()) as client:
        workers = client.scheduler_info()["workers"].values()
        assert len(workers) == DASK_BLOCK["n_workers"]
        assert {worker["nthreads"] for worker in workers} == {1}
        assert {worker["memory_limit"] for worker in workers} == {512_000_000}
        assert client.submit(sum, [1, 2, 3]).result() == 6


def test_an_address_connects_to_that_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    distributed = pytest.importorskip("distributed", reason="the dask group is not installed")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as running:
        settings = {**DASK_BLOCK, "scheduler": running.scheduler_address}
        with cluster.dask_client(params(dask=settings)) as client:
            assert client.scheduler.address == running.scheduler_address
            assert client.submit(len, "abc").result() == 3


def test_the_environment_names_the_scheduler_before_params(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DaskJob's job pod has DASK_SCHEDULER_ADDRESS: it wins over dask.scheduler."""
    distributed = pytest.importorskip("distributed", reason="the dask group is not installed")
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as running:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", running.scheduler_address)
        settings = {**DASK_BLOCK, "scheduler": "tcp://127.0.0.1:9"}
        with cluster.dask_client(params(dask=settings)) as client:
            assert client.scheduler.address == running.scheduler_address


def test_an_unreachable_scheduler_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed", reason="the dask group is not installed")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    # Port 9 (discard) on localhost: nothing listens there.
    settings = {**DASK_BLOCK, "scheduler": "tcp://127.0.0.1:9"}
    with (
        pytest.raises(UserError, match=r"cannot reach the Dask scheduler at dask.scheduler.*:9"),
        cluster.dask_client(params(dask=settings)),
    ):
        pass
