"""The exported model: ``features.json`` + ``model.onnx`` loaded into one ONNX Runtime session.

The two files are one unit: the schema's checksum covers its whole content (threshold included),
it carries the ONNX file's sha256, and the model version derives from both. Anything else is
refused with a ``ModelError`` that names the file and the fix, before the service answers.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..features import FeatureSchema
from ..model_files import ONNX_FILE, SCHEMA_FILE

log = logging.getLogger(__name__)

REEXPORT = "Run `dvc repro export` to write the model files again."
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ModelError(RuntimeError):
    """The model directory cannot be served; the message says which file and why."""


def session_options() -> ort.SessionOptions:
    """Tuned for single-row latency: one thread, sequential, every graph optimisation.

    Throughput comes from more replicas (one process per pod), not from threads that would
    fight over the pod's CPU quota; see docs/serving.md.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings and below are noise in JSON logs
    return options


@dataclass
class Model:
    schema: FeatureSchema
    session: ort.InferenceSession
    input_name: str
    output_name: str
    version: str
    sha256: str

    @classmethod
    def load(cls, model_dir: str | Path, schema: FeatureSchema | None = None) -> Model:
        model_dir = Path(model_dir)
        schema = schema or load_schema(model_dir)
        check_identity(schema, model_dir / SCHEMA_FILE)
        path = model_dir / ONNX_FILE
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(
                f"cannot read {path}: {exc.strerror}. Run `dvc repro` (or `dvc pull`)."
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        expected = schema.model["sha256"]
        if expected != digest:
            raise ModelError(
                f"{path} has sha256 {digest} but {SCHEMA_FILE} was written for {expected}: "
                f"the two files come from different exports. {REEXPORT}"
            )
        try:
            session = ort.InferenceSession(
                data, session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime's errors share no base class narrower than this
            raise ModelError(f"ONNX Runtime cannot load {path}: {exc}. {REEXPORT}") from None
        inputs = {i.name: i for i in session.get_inputs()}
        if schema.onnx_input not in inputs or len(inputs) != 1:
            raise ModelError(
                f"{path} inputs are {sorted(inputs)}; {SCHEMA_FILE} expects exactly one input "
                f"named {schema.onnx_input!r}"
            )
        width = inputs[schema.onnx_input].shape[-1]
        if isinstance(width, int) and width != schema.n_inputs:
            raise ModelError(
                f"{path} takes {width} inputs but {SCHEMA_FILE} encodes {schema.n_inputs}"
            )
        output_name = _probability_output(session)
        return cls(schema, session, schema.onnx_input, output_name, schema.model["version"], digest)

    def predict(self, tensor: np.ndarray) -> np.ndarray:
        """p_hat (probability of the positive class) for each row of a float32 tensor."""
        (probabilities,) = self.session.run([self.output_name], {self.input_name: tensor})
        return probabilities[:, 1]

    def warm_up(self, rounds: int = 20) -> None:
        """Run the first (slow) inferences before the pod reports ready."""
        for rows in (1, 8, 256):
            tensor = np.zeros((rows, self.schema.n_inputs), dtype=np.float32)
            for _ in range(rounds):
                p = self.predict(tensor)
            if p.shape != (rows,) or not np.all(np.isfinite(p)):
                raise ModelError("the model returned no finite probabilities on warm-up")

    def info(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "estimator": self.schema.model.get("estimator"),
            "threshold": self.schema.threshold,
            "metrics": self.schema.metrics,
            "n_inputs": self.schema.n_inputs,
            "features": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "nullable": f.nullable,
                    **({"categories": list(f.categories)} if f.categories else {}),
                    **({"description": f.description} if f.description else {}),
                }
                for f in self.schema.features
            ],
        }


def load_schema(model_dir: str | Path) -> FeatureSchema:
    """The served schema, checked whole: structure, checksum, ONNX hash and model version."""
    path = Path(model_dir) / SCHEMA_FILE
    try:
        schema = FeatureSchema.load(path)
    except OSError as exc:
        raise ModelError(
            f"cannot read {path}: {exc.strerror}. Run `dvc repro` (or `dvc pull`)."
        ) from None
    except ValueError as exc:
        raise ModelError(f"{path} is not a valid feature schema: {exc}. {REEXPORT}") from None
    check_identity(schema, path)
    return schema


def check_identity(schema: FeatureSchema, path: Path) -> None:
    """``model.sha256`` names an ONNX file and ``model.version`` derives from it and the schema.

    ``FeatureSchema.load`` has checked the checksum; this checks what only a served model needs.
    """
    digest = schema.model.get("sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise ModelError(
            f"{path} has no model.sha256 (the ONNX file's hash), so it was not written by "
            f"`export`. {REEXPORT}"
        )
    version = schema.model.get("version")
    code_version = version.rpartition("+")[0] if isinstance(version, str) else ""
    expected = schema.model_version(digest, code_version)
    if version != expected:
        raise ModelError(
            f"{path} says model.version {version!r}, but its ONNX hash and schema make "
            f"{expected!r}: the version does not cover what would be served. {REEXPORT}"
        )


def _probability_output(session: ort.InferenceSession) -> str:
    """The [N, 2] float output (skl2onnx names it ``probabilities`` with zipmap off)."""
    outputs = session.get_outputs()
    for output in outputs:
        if output.name == "probabilities":
            return output.name
    for output in outputs:
        if output.type == "tensor(float)" and len(output.shape) == 2:
            return output.name
    raise ModelError(
        "the ONNX model has no [N, 2] float probability output: export it with zipmap disabled "
        f"(outputs: {[o.name for o in outputs]})"
    )
