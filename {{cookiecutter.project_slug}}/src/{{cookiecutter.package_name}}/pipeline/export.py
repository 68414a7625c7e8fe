"""DVC stage ``export``: the ONNX model and the feature schema the service loads.

``models/model.onnx`` takes ONE float32 tensor named ``FeatureSchema.onnx_input`` of shape
``[batch, n_inputs]`` (the encoder's output) and returns ``label`` and ``probabilities`` as plain
tensors (no ZipMap), so the service reads ``probabilities[:, 1]``. ``models/features.json`` is the
schema ``train`` built (features, threshold, policy) plus the ONNX file's sha256, the model
version that derives from both, the evaluation metrics and a checksum over all of it.
``models/reference_profile.json`` bins every feature and the score on the training split; the
drift job compares production traffic against it. The three files are published together
(``model_files.publishing``): written aside, then renamed into place with ``features.json`` last.

Parity check: held-out test rows are scored by the sklearn pipeline and by ONNX Runtime; the stage
fails if any probability differs by more than ``export.parity_atol``.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import __version__
from ..config import Params, read_split, stage_args, write_json
from ..features import FeatureSchema
from ..model_files import ONNX_FILE, PROFILE_FILE, SCHEMA_FILE, publishing
from ..monitoring.profile import ReferenceProfile
from . import converters
from .cluster import dask_client, engine
from .matrix import encode, text_columns
from .trained import TrainedModel

ONNX_OUTPUTS = ("label", "probabilities")


class ParityError(AssertionError):
    """ONNX Runtime and scikit-learn disagree beyond the tolerance."""


def to_onnx(model: Any, schema: FeatureSchema, target_opset: int) -> bytes:
    """Convert the fitted pipeline; deterministic (same model → same bytes).

    Raises ``converters.UnsupportedModelError`` naming the step skl2onnx has no converter for.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator

    converters.register_for(model)
    with warnings.catch_warnings():
        # skl2onnx 1.20 hands protobuf Python bools for integer tree attributes; protobuf 6
        # accepts them with this warning (pyproject pins protobuf<7, which would reject them).
        warnings.filterwarnings(
            "ignore", message=".*Expected an int, got a boolean", category=DeprecationWarning
        )
        try:
            onnx_model = convert_sklearn(
                model,
                name=schema.target,
                initial_types=[(schema.onnx_input, FloatTensorType([None, schema.n_inputs]))],
                options={id(model): {"zipmap": False}},
                target_opset={"": target_opset, "ai.onnx.ml": 3},
                final_types=None,
            )
        except (MissingShapeCalculator, MissingConverter) as exc:
            raise converters.unsupported_error(model, exc) from None
    produced = [output.name for output in onnx_model.graph.output]
    if produced != list(ONNX_OUTPUTS):
        raise RuntimeError(f"ONNX outputs are {produced}, expected {list(ONNX_OUTPUTS)}")
    return onnx_model.SerializeToString()


def onnx_probabilities(onnx_bytes: bytes, schema: FeatureSchema, matrix: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    _, probabilities = session.run(list(ONNX_OUTPUTS), {schema.onnx_input: matrix})
    return np.asarray(probabilities)[:, 1]


def parity(
    model: Any, onnx_bytes: bytes, schema: FeatureSchema, matrix: np.ndarray, atol: float
) -> dict:
    """Compare sklearn and ONNX Runtime probabilities; raise ``ParityError`` beyond ``atol``."""
    expected = model.predict_proba(matrix)[:, 1]
    actual = onnx_probabilities(onnx_bytes, schema, matrix)
    diff = np.abs(expected - actual)
    worst = int(np.argmax(diff))
    report = {
        "rows": len(matrix),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "atol": atol,
        "decision_mismatches": int(
            ((expected >= schema.threshold) != (actual >= schema.threshold)).sum()
        ),
        "passed": bool(diff.max() <= atol),
    }
    if not report["passed"]:
        raise ParityError(
            f"ONNX and sklearn probabilities differ by up to {diff.max():.3g} (row {worst}: "
            f"sklearn {expected[worst]:.6f}, onnx {actual[worst]:.6f}); "
            f"export.parity_atol is {atol}"
        )
    return report


def reference_profile(
    model: Any, schema: FeatureSchema, train: Any, drift: Mapping[str, Any]
) -> ReferenceProfile:
    """What the drift job compares production against: the training split and its scores."""
    matrix = encode(train, schema)
    scores = model.predict_proba(matrix)[:, 1]
    settings = {key: float(drift[key]) for key in ("psi_threshold", "min_records")}
    return ReferenceProfile.build(schema, matrix, scores, settings, bins=int(drift["bins"]))


def training_profile(params: Params, model: Any, schema: FeatureSchema) -> ReferenceProfile:
    """The training split's profile: in memory (engine: local), or from per-partition sketches
    and counts that leave the split on the workers (engine: dask, pipeline/dask_profile.py)."""
    if engine(params) == "local":
        train = read_split(params.path("train_split"), text_columns(schema))
        return reference_profile(model, schema, train, params.read("drift"))
    with dask_client(params) as client:
        from . import dask_profile, dask_train  # the dask group, which engine: local lacks

        train = dask_train.read_partitions(params.path("train_split"), text_columns(schema))
        return dask_profile.reference_profile(client, model, schema, train, params.read("drift"))


def run(params: Params) -> dict[str, Any]:
    options = params.read("export")
    trained = TrainedModel.load(params.path("model_pickle"))
    model, schema = trained.pipeline, trained.schema

    onnx_bytes = to_onnx(model, schema, int(options["target_opset"]))
    test = read_split(params.path("test_split"), text_columns(schema))
    held_out = encode(test.head(int(options["parity_rows"])), schema)
    report = parity(model, onnx_bytes, schema, held_out, float(options["parity_atol"]))

    digest = hashlib.sha256(onnx_bytes).hexdigest()
    shipped = schema.exported(
        onnx_sha256=digest,
        code_version=__version__,
        model={
            "estimator": trained.estimator,
            "file": ONNX_FILE,
            "onnx_outputs": list(ONNX_OUTPUTS),
            "probability_output": "probabilities",
            "positive_class_index": 1,
            "target_opset": int(options["target_opset"]),
            "train_rows": trained.rows["train"],
        },
        metrics=json.loads(params.path("metrics").read_text()),
    )
    profile = training_profile(params, model, shipped)
    with publishing(params.path("models")) as scratch:
        (scratch / ONNX_FILE).write_bytes(onnx_bytes)
        profile.save(scratch / PROFILE_FILE)
        shipped.save(scratch / SCHEMA_FILE)
    write_json(report, params.path("parity"))
    return {
        **report,
        "sha256": digest,
        "version": shipped.model["version"],
        "bytes": len(onnx_bytes),
    }


def main(argv: Sequence[str]) -> int:
    args = stage_args(argv, "ONNX model + feature schema, with a parity check")
    started = time.perf_counter()
    summary = run(Params.load(args.root))
    print(
        f"export: version {summary['version']}, {summary['bytes']} bytes, parity on "
        f"{summary['rows']} rows max |diff| {summary['max_abs_diff']:.2e} "
        f"(atol {summary['atol']}), {time.perf_counter() - started:.1f}s"
    )
    return 0
