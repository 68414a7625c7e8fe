"""``train`` on Dask (params.yaml ``engine: dask``): build_model()'s pipeline, fitted on partitions.

No worker ever holds more than its own partitions, and the stage process holds only the
validation scores (one float per row):

1. each partition of the training split is encoded where it lives, by the service's own encoder
   (``matrix.encode``), into a float32 block of the model's inputs;
2. the imputer's medians are computed from those blocks column by column (exact: the same
   statistics ``SimpleImputer.fit`` computes on the whole matrix);
3. the final estimator's Dask twin (``lightgbm.DaskLGBMClassifier`` or
   ``xgboost.dask.DaskXGBClassifier``), made with exactly the hyper-parameters build_model() gave
   the local one (``get_params()``: one source of truth), trains on the imputed blocks;
4. ``.to_local()`` (or XGBoost's booster) puts the plain scikit-learn estimator back in
   build_model()'s pipeline, so the threshold, ``models/model.pkl``, evaluate, export, the ONNX
   parity check and the service see the same kind of model as with ``engine: local``.

Memory: a worker's peak is its share of the input matrix twice during the fit (LightGBM's
``_train_part`` concatenates the worker's blocks into one copy while the blocks stay its
inputs), plus LightGBM's bin sample, plus what the process kept from encoding. The last was the
largest: reading a Parquet partition leaves freed pages in Arrow's memory pool (mimalloc) and
the pandas frames' small objects leave freed pages in the C heap, which the process keeps. So
every encode hands Arrow's unused pages back (``_encoded``) and every worker trims its heap
(``_trim_heap``) before the fit: at 1 million rows on two workers the fit's peaks went from
1,285 / 1,371 MiB to 910 / 910 MiB a worker, and neither changes a byte of the data or the
model.

Reproducibility: LightGBM's data-parallel learner bins features and sums histograms per
worker, so the model depends on which rows each worker holds. Partition ``i`` of ``n`` is placed
on worker ``i * workers // n`` (workers in address order) and the first partition's worker is
LightGBM's rank 0, so the same data, partitions, ``dask.n_workers`` and
``dask.threads_per_worker: 1`` give the same model bytes; another worker or partition count
gives a slightly different (equally valid) model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from ..features import Feature
from .cluster import EngineError
from .matrix import encode


def read_partitions(path: Path, text_columns: Sequence[str]) -> dd.DataFrame:
    """A prepared split (a Parquet file, or a folder of them) as a Dask frame, with the dtypes
    ``config.read_split`` gives pandas: text columns as Python strings (Dask would make them
    Arrow strings, whose missing value the encoder does not take)."""
    with dask.config.set({"dataframe.convert-string": False}):
        frame = dd.read_parquet(path)
    text = {column: "object" for column in text_columns if column in frame.columns}
    return frame.astype(text) if text else frame


def _encoded(part: Any, features: Sequence[Feature]) -> np.ndarray:
    """``encode`` on a worker, then Arrow's unused pages back to the system: the Parquet read
    that made ``part`` left them in Arrow's pool, which keeps them otherwise (a few hundred MiB
    a worker by the end of encoding, measured at 1 million rows)."""
    matrix = encode(part, features)
    import pyarrow as pa  # installed with dask[dataframe]

    pa.default_memory_pool().release_unused()
    return matrix


# Ref: https://distributed.dask.org/en/stable/worker-memory.html#manually-trim-memory
def _trim_heap() -> bool:
    """Hand the C heap's free pages back to the system: glibc's ``malloc_trim``, Dask's own
    advice for memory a worker no longer uses. False where the C library has none (musl,
    macOS): nothing is trimmed, nothing fails."""
    import ctypes
    import ctypes.util

    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def _labels(part: Any, target: str) -> np.ndarray:
    return part[target].to_numpy(dtype="int64")


@dataclass
class Placed:
    """The training split on the workers: partition ``i``'s input block and labels (futures),
    pinned to the worker its position chooses (see the module docstring), and its row count."""

    workers: list[str]
    matrices: list[Any]
    labels: list[Any]
    sizes: list[int]
    width: int

    @classmethod
    def encode(
        cls, client: Any, frame: dd.DataFrame, features: Sequence[Feature], target: str
    ) -> Placed:
        addresses = sorted(client.scheduler_info()["workers"])
        if frame.npartitions < len(addresses):
            # One partition per worker at least, so that every worker trains on its share.
            frame = frame.repartition(npartitions=len(addresses))
        parts = frame.to_delayed()
        workers = [addresses[i * len(addresses) // len(parts)] for i in range(len(parts))]
        matrices, labels = [], []
        for part, worker in zip(parts, workers, strict=True):
            matrix, label = client.compute(
                [dask.delayed(_encoded)(part, features), dask.delayed(_labels)(part, target)],
                workers=[worker],
                # Loose: the chosen worker while it lives; another if Dask restarts it (past
                # dask.memory_limit), instead of waiting forever for an address that is gone.
                allow_other_workers=True,
            )
            matrices.append(matrix)
            labels.append(label)
        sizes = client.gather(client.map(len, labels))
        width = sum(feature.width for feature in features)
        return cls(workers, matrices, labels, sizes, width)

    def transformed(self, client: Any, transform: Any) -> Placed:
        """Every block through ``transform`` on its own worker. The old blocks are released as
        their new ones are made, so a worker holds one copy of its share, not two."""
        matrices = [
            client.submit(transform, matrix, workers=[worker], allow_other_workers=True)
            for matrix, worker in zip(self.matrices, self.workers, strict=True)
        ]
        return Placed(self.workers, matrices, self.labels, self.sizes, self.width)

    def arrays(self) -> tuple[da.Array, da.Array]:
        """The input matrix and the labels as Dask arrays, block ``i`` = partition ``i``."""
        blocks = [
            da.from_delayed(dask.delayed(matrix), shape=(size, self.width), dtype=np.float32)
            for matrix, size in zip(self.matrices, self.sizes, strict=True)
        ]
        targets = [
            da.from_delayed(dask.delayed(label), shape=(size,), dtype=np.int64)
            for label, size in zip(self.labels, self.sizes, strict=True)
        ]
        return da.concatenate(blocks), da.concatenate(targets)


def _nanmedian_columns(blocks: da.Array) -> np.ndarray:
    """Each column's median over present values (NaN where none): SimpleImputer's statistic."""
    columns = blocks.rechunk({0: -1, 1: 1})
    with np.errstate(all="ignore"):
        return np.asarray(da.nanmedian(columns, axis=0).compute(), dtype=np.float64)


def fit_imputer(template: SimpleImputer, blocks: da.Array) -> SimpleImputer:
    """``template`` (build_model()'s unfitted imputer) fitted to the medians of ``blocks``.

    The median of one row is that row, so fitting on the row of medians gives the statistics
    fitting on the whole matrix would, with the same rule for all-missing columns.
    """
    if template.strategy != "median" or template.add_indicator:
        raise EngineError(
            "engine: dask fits build_model()'s SimpleImputer(strategy='median') only: "
            "change the imputer or set engine: local"
        )
    medians = _nanmedian_columns(blocks)
    imputer = SimpleImputer(**template.get_params())
    return imputer.fit(medians[None, :].astype(blocks.dtype))


class _RankedClient:
    """The client LightGBM trains through, answering ``who_has`` in the order it was asked.

    LightGBM numbers its machines in the order ``Client.who_has`` lists the data parts, which
    is the order of a set of strings, so it changes with each process's string hashing: the
    same data would land on a different rank, giving a (slightly) different model each run.
    Listing the parts in their own order makes partition ``0``'s worker rank 0, every run.
    """

    def __init__(self, client: Any):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def who_has(self, futures: Sequence[Any], **kwargs: Any) -> dict[Any, Any]:
        found = self._client.who_has(futures, **kwargs)
        return {future.key: found[future.key] for future in futures}


# Booster parameters that describe the cluster a LightGBM model trained on (its random ports
# among them), not the model: models/model.pkl keeps none of them, so reruns are byte-identical.
LIGHTGBM_NETWORK = ("machines", "local_listen_port", "num_machines", "time_out")


def _without_network(local: Any) -> Any:
    import lightgbm

    text = local.booster_.model_to_string()
    cut = tuple(f"[{name}: " for name in LIGHTGBM_NETWORK)
    kept = "\n".join(line for line in text.split("\n") if not line.startswith(cut))
    local._Booster = lightgbm.Booster(model_str=kept)
    for name in LIGHTGBM_NETWORK:
        local._other_params.pop(name, None)
        local.__dict__.pop(name, None)
    # to_local() copies the fitted attributes in a set's order, and pickle writes them in the
    # order they were set: sorted, the same model gives the same bytes.
    attributes = sorted(local.__dict__.items())
    local.__dict__.clear()
    local.__dict__.update(attributes)
    return local


def _quiet_lightgbm() -> None:
    """LightGBM's Dask info lines ("Finding random open ports ...") through logging, warnings
    only: the stage prints its own summary. (The workers' "[LightGBM] [Info]" lines about
    their network come from C++ threads that no Python logger reaches.)"""
    import lightgbm

    logger = logging.getLogger("lightgbm")
    logger.setLevel(logging.WARNING)
    # Every Dask fit warns so; the threads are dask.threads_per_worker, and to_local() gets
    # build_model()'s n_jobs back.
    if _not_n_jobs not in logger.filters:
        logger.addFilter(_not_n_jobs)
    lightgbm.register_logger(logger)


def _not_n_jobs(record: logging.LogRecord) -> bool:
    return "n_jobs will be ignored" not in record.getMessage()


def dask_twin(estimator: Any, client: Any) -> Any:
    """The Dask estimator of ``estimator``'s library, with its hyper-parameters."""
    module = type(estimator).__module__.split(".")[0]
    options = estimator.get_params()
    if module == "lightgbm":
        import lightgbm

        _quiet_lightgbm()
        return lightgbm.DaskLGBMClassifier(client=_RankedClient(client), **options)
    if module == "xgboost":
        import xgboost.dask

        twin = xgboost.dask.DaskXGBClassifier(**options)
        twin.client = client
        return twin
    raise EngineError(
        f"engine: dask trains LightGBM or XGBoost, and build_model() returned "
        f"{type(estimator).__name__}: set train.model lightgbm or xgboost, or engine: local"
    )


def to_local(twin: Any, estimator: Any) -> Any:
    """The fitted Dask estimator as its library's plain scikit-learn estimator."""
    if hasattr(twin, "to_local"):
        local = twin.to_local()
        local.set_params(n_jobs=estimator.get_params()["n_jobs"])
        return _without_network(local)
    # XGBoost's Dask estimators have no to_local: the booster is the model, loaded into the
    # local classifier with the same parameters (its documented round trip, save_raw/load_model).
    local = type(estimator)(**estimator.get_params())
    local.load_model(bytearray(twin.get_booster().save_raw(raw_format="ubj")))
    return local


def fit_pipeline(
    model: Pipeline, client: Any, frame: dd.DataFrame, features: Sequence[Feature], target: str
) -> tuple[Pipeline, int]:
    """Fit build_model()'s pipeline (imputer steps, then the estimator) on the partitions:
    the fitted pipeline and the number of rows it saw."""
    *transforms, (name, estimator) = model.steps
    if not all(isinstance(step, SimpleImputer) for _, step in transforms):
        raise EngineError(
            "engine: dask fits a build_model() pipeline of SimpleImputer steps and a LightGBM or "
            "XGBoost estimator: simplify build_model() or set engine: local"
        )
    placed = Placed.encode(client, frame, features, target)
    fitted = []
    for step_name, template in transforms:
        imputer = fit_imputer(template, placed.arrays()[0])
        placed = placed.transformed(client, imputer.transform)
        fitted.append((step_name, imputer))
    matrix, labels = placed.arrays()
    # The heap the encoding and the imputer freed, back before LightGBM needs the most.
    client.run(_trim_heap)
    twin = dask_twin(estimator, client)
    twin.fit(matrix, labels)
    return Pipeline([*fitted, (name, to_local(twin, estimator))]), sum(placed.sizes)


def _scores(part: Any, model: Pipeline, features: Sequence[Feature]) -> np.ndarray:
    return model.predict_proba(encode(part, features))[:, 1]


def scores_and_labels(
    client: Any, model: Pipeline, frame: dd.DataFrame, features: Sequence[Feature], target: str
) -> tuple[np.ndarray, np.ndarray]:
    """The fitted model's P(y=1) for every row, scored partition by partition on the workers,
    and the labels: two numbers a row reach the stage process, never the rows."""
    shipped = client.scatter(model, broadcast=True)
    parts = frame.to_delayed()
    scores = [dask.delayed(_scores)(part, shipped, features) for part in parts]
    labels = [dask.delayed(_labels)(part, target) for part in parts]
    computed = client.gather(client.compute([*scores, *labels]))
    return np.concatenate(computed[: len(parts)]), np.concatenate(computed[len(parts) :])
