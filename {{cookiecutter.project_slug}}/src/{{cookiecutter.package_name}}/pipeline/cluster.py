"""Where ``engine: dask`` computes: a ``LocalCluster`` sized from params.yaml, or a running one.

params.yaml's top-level ``engine`` picks how the pipeline computes: ``local`` (the default, one
pandas frame in one process) or ``dask`` (partitions on Dask workers, for data larger than one
machine's memory). The ``dask:`` block says which cluster: an empty ``scheduler`` starts a
``LocalCluster`` of ``n_workers`` processes, each with ``threads_per_worker`` threads and at
most ``memory_limit`` of memory (Dask pauses, then restarts a worker past it); an address such
as ``tcp://dask-scheduler:8786`` (the Dask Kubernetes operator's scheduler service) connects to
that cluster instead. ``DASK_SCHEDULER_ADDRESS`` in the environment (Dask's own variable, which
the Dask Kubernetes operator sets in a ``DaskJob``'s job pod) overrides ``dask.scheduler``: the
deployment knows where its cluster is, the params say how to train.

Dask is an optional dependency group (``dask`` in pyproject.toml): this module imports it only
inside ``dask_client``, so the local engine never needs it.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..config import Params, UserError

ENGINES = ("local", "dask")
# The families whose library trains on Dask natively and hands back its local estimator:
# lightgbm.DaskLGBMClassifier and xgboost.dask.DaskXGBClassifier (both have `.to_local()`).
DASK_MODEL_FAMILIES = ("lightgbm", "xgboost")
# Dask's own variable for "the scheduler to use"; a DaskJob's job pod has it.
SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"
# Seconds to reach a remote scheduler before giving up: long enough for a cold Kubernetes
# service, short enough that a wrong address fails the stage instead of hanging it.
CONNECT_TIMEOUT = 30


class EngineError(UserError, ValueError):
    """params.yaml's engine or dask block is wrong, or Dask cannot run what it asks."""


def engine(params: Params) -> str:
    """params.yaml's ``engine``: ``local`` or ``dask``."""
    value = params.read("engine")
    if value not in ENGINES:
        raise EngineError(f"params.yaml engine is {value!r}: use one of {', '.join(ENGINES)}")
    return str(value)


def require_dask_family(family: str) -> None:
    """``engine: dask`` trains only the families with a native Dask estimator."""
    if family not in DASK_MODEL_FAMILIES:
        raise EngineError(
            f"engine: dask trains train.model {' or '.join(DASK_MODEL_FAMILIES)}, not "
            f"{family!r}: set train.model to one of them (and add its group to default-groups "
            "in pyproject.toml), or set engine: local"
        )


def require_dask() -> Any:
    """The ``distributed`` module from the ``dask`` dependency group, or a clear error."""
    try:
        importlib.import_module("dask.dataframe")
        return importlib.import_module("distributed")
    except ModuleNotFoundError:
        raise EngineError(
            "engine: dask needs the dask dependency group, which is not installed: add 'dask' "
            "to default-groups in pyproject.toml ([tool.uv]), then run `make setup` "
            "(or set engine: local)"
        ) from None


def _positive_int(block: Mapping[str, Any], key: str) -> int:
    value = block.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EngineError(f"params.yaml dask.{key} is {value!r}: use a whole number of 1 or more")
    return value


@dataclass(frozen=True)
class DaskSettings:
    """params.yaml's ``dask:`` block, checked."""

    scheduler: str  # "" → a LocalCluster; else the address of a running scheduler
    n_workers: int
    threads_per_worker: int
    memory_limit: str  # per worker, as Dask reads it: "2GB", "512MiB", ...

    @classmethod
    def from_params(cls, block: Any) -> DaskSettings:
        if not isinstance(block, Mapping):
            raise EngineError("params.yaml dask: expected a mapping (scheduler, n_workers, ...)")
        scheduler = block.get("scheduler") or ""
        if not isinstance(scheduler, str):
            raise EngineError(
                f"params.yaml dask.scheduler is {scheduler!r}: use an address such as "
                "tcp://dask-scheduler:8786, or empty for a local cluster"
            )
        memory_limit = str(block.get("memory_limit", ""))
        try:
            from dask.utils import parse_bytes

            parse_bytes(memory_limit)
        except (ImportError, ModuleNotFoundError):
            pass  # require_dask() says what to install
        except (ValueError, TypeError):
            raise EngineError(
                f"params.yaml dask.memory_limit is {memory_limit!r}: use a size such as 2GB"
            ) from None
        return cls(
            scheduler=scheduler.strip(),
            n_workers=_positive_int(block, "n_workers"),
            threads_per_worker=_positive_int(block, "threads_per_worker"),
            memory_limit=memory_limit,
        )


@contextmanager
def dask_client(params: Params) -> Iterator[Any]:
    """A ``distributed.Client`` on the cluster params.yaml names, closed (and a local cluster
    shut down) on exit."""
    settings = DaskSettings.from_params(params.read("dask"))
    distributed = require_dask()
    from_environment = os.environ.get(SCHEDULER_VARIABLE, "").strip()
    address = from_environment or settings.scheduler
    if address:
        where = SCHEDULER_VARIABLE if from_environment else "dask.scheduler"
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise EngineError(
                f"cannot reach the Dask scheduler at {where} {address!r} ({exc}): check the "
                "address, or leave it empty for a local cluster"
            ) from None
        with client:
            yield client
        return
    cluster = distributed.LocalCluster(
        n_workers=settings.n_workers,
        threads_per_worker=settings.threads_per_worker,
        memory_limit=settings.memory_limit,
        processes=True,
        # The HTTP server (dashboard, health, metrics) on a free port: Dask's fixed 8787 clashes
        # between projects on a shared machine (and None still tries 8787, then warns).
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    with cluster, distributed.Client(cluster) as client:
        yield client
