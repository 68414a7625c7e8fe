"""ONNX converters for estimators skl2onnx does not ship, registered in this one place.

skl2onnx converts scikit-learn's own estimators. A step from another library (LightGBM, XGBoost,
CatBoost, ...) needs its converter registered with skl2onnx before ``export`` converts the
pipeline, else skl2onnx stops with ``MissingShapeCalculator``. ``register_for(model)`` registers
the converters of exactly the libraries the fitted pipeline uses, so a project that never trains
CatBoost never imports it (and need not install it: each library is an optional dependency
group in pyproject.toml).

To support another library: install it through a dependency group, write a ``_<library>()``
function below that calls skl2onnx's ``update_registered_converter`` (see CUSTOM_CONVERTERS_DOC),
and add it to ``REGISTRARS`` under the library's top-level module name.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import UserError
from .trained import describe, steps

CUSTOM_CONVERTERS_DOC = "https://onnx.ai/sklearn-onnx/tutorial_2_new_converter.html"
HERE = "src/" + __name__.replace(".", "/") + ".py"

# A binary classifier's converter offers these options; export asks for zipmap=False (plain
# probability tensors, which is what the service reads).
CLASSIFIER_OPTIONS = {"nocl": [True, False], "zipmap": [True, False, "columns"]}


class UnsupportedModelError(UserError, ValueError):
    """A step of the pipeline has no ONNX converter; the message says which and what to do (a
    team's own model, not a bug: the CLI prints it as one line, models/ is left as it was)."""


def float32_floor(value: float) -> float:
    """The largest float32 not above ``value``: for a float32 input x, ``x <= value`` exactly
    when ``x <= float32_floor(value)``."""
    rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


def _float32_exact_splits(tree: dict[str, Any]) -> None:
    """Round each ``<=`` split's threshold down to a float32 (in place).

    LightGBM keeps thresholds as doubles, just above the midpoint of two neighbouring values
    (its bin bounds), and ONNX's tree ensemble stores float32s. Rounded to the *nearest*
    float32, a threshold between two neighbouring float32 inputs becomes the upper one, and
    every row holding that value takes the other branch: with dense large numbers (amounts in
    the millions) the ONNX model's probabilities differed by up to 0.45. Rounded down, every
    float32 input (the service's tensor is float32) takes LightGBM's own branch.
    """
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.get("decision_type") == "<=" and isinstance(node.get("threshold"), float):
            node["threshold"] = float32_floor(node["threshold"])
        stack.extend(node[key] for key in ("left_child", "right_child") if key in node)


class _DumpedBooster:
    """A LightGBM booster as its (edited) JSON dump: onnxmltools converts a booster marked
    ``is_mock`` from ``dump_model()`` instead of calling LightGBM's C API."""

    is_mock = True

    def __init__(self, dump: dict[str, Any]):
        self._dump = dump

    def dump_model(self) -> dict[str, Any]:
        return self._dump


def _convert_lightgbm(scope: Any, operator: Any, container: Any) -> None:
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    model = operator.raw_operator
    dump = model.booster_.dump_model()
    for tree in dump["tree_info"]:
        _float32_exact_splits(tree["tree_structure"])
    exact = copy.copy(model)
    exact._Booster = _DumpedBooster(dump)  # what LGBMClassifier.booster_ returns
    operator.raw_operator = exact
    try:
        convert_lightgbm(scope, operator, container)
    finally:
        operator.raw_operator = model


@functools.cache
def _lightgbm() -> None:
    from lightgbm import LGBMClassifier
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        _convert_lightgbm,
        options=CLASSIFIER_OPTIONS,
    )


@functools.cache
def _xgboost() -> None:
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from xgboost import XGBClassifier

    update_registered_converter(
        XGBClassifier,
        "XGBoostXGBClassifier",
        calculate_linear_classifier_output_shapes,
        convert_xgboost,
        options=CLASSIFIER_OPTIONS,
    )


def _catboost_parser(scope: Any, model: Any, inputs: list, custom_parsers: Any = None) -> list:
    """Declare the two outputs skl2onnx expects of a classifier: label and probabilities.

    skl2onnx's default parser cannot tell CatBoost is a classifier; without this it would not
    offer the label/probabilities pair export asks for.
    """
    from skl2onnx._parse import _apply_zipmap, _get_sklearn_operator_name
    from skl2onnx.common.data_types import Int64TensorType, guess_tensor_type

    operator = scope.declare_local_operator(_get_sklearn_operator_name(type(model)), model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable("label", Int64TensorType()))
    operator.outputs.append(
        scope.declare_local_variable("probabilities", guess_tensor_type(inputs[0].type))
    )
    zipmap = scope.get_options(model, {"zipmap": True})["zipmap"]
    if zipmap is False:
        return operator.outputs
    return _apply_zipmap(zipmap, scope, model, inputs[0].type, operator.outputs)


def _catboost_converter(scope: Any, operator: Any, container: Any) -> None:
    """Copy the tree-ensemble node of CatBoost's own ONNX export into skl2onnx's graph."""
    from catboost.utils import convert_to_onnx_object
    from onnx.helper import get_attribute_value

    exported = convert_to_onnx_object(operator.raw_operator)
    kinds = [node.op_type for node in exported.graph.node]
    # CatBoost exports one TreeEnsembleClassifier (then a ZipMap, dropped: export asks for
    # plain tensors). Anything else (e.g. its text or embedding features) is not handled here.
    if not kinds or not kinds[0].startswith("TreeEnsemble") or exported.graph.initializer:
        raise UnsupportedModelError(
            f"CatBoost exported nodes {kinds} with {len(exported.graph.initializer)} "
            f"initializers; {HERE} copies only a single tree ensemble (numeric features only)"
        )
    node = exported.graph.node[0]
    opsets = {entry.domain: entry.version for entry in exported.opset_import}
    container.add_node(
        node.op_type,
        [operator.inputs[0].full_name],
        [operator.outputs[0].full_name, operator.outputs[1].full_name],
        op_domain=node.domain,
        op_version=opsets.get(node.domain),
        **{attribute.name: get_attribute_value(attribute) for attribute in node.attribute},
    )


@functools.cache
def _catboost() -> None:
    from catboost import CatBoostClassifier
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    update_registered_converter(
        CatBoostClassifier,
        "CatBoostCatBoostClassifier",
        calculate_linear_classifier_output_shapes,
        _catboost_converter,
        parser=_catboost_parser,
        options=CLASSIFIER_OPTIONS,
    )


# Top-level module of an estimator's class → the function registering its converters.
REGISTRARS: dict[str, Callable[[], None]] = {
    "lightgbm": _lightgbm,
    "xgboost": _xgboost,
    "catboost": _catboost,
}


def library(estimator: Any) -> str:
    return type(estimator).__module__.partition(".")[0]


def register_for(model: Any) -> None:
    """Register the converters of every non-scikit-learn library the pipeline uses.

    get_params(deep=True) reaches estimators inside meta-estimators too (an LGBMClassifier
    inside a CalibratedClassifierCV), which are no pipeline steps.
    """
    nested = [value for value in model.get_params(deep=True).values() if hasattr(value, "fit")]
    used = {library(estimator) for estimator in (model, *steps(model), *nested)}
    for name in sorted(used & REGISTRARS.keys()):
        REGISTRARS[name]()


def unsupported(model: Any) -> list[str]:
    """Class names of the pipeline's steps that no registered converter handles."""
    from skl2onnx._supported_operators import sklearn_operator_name_map

    return [
        type(step).__name__ for step in steps(model) if type(step) not in sklearn_operator_name_map
    ]


def unsupported_error(model: Any, cause: Exception) -> UnsupportedModelError:
    """What export says when skl2onnx finds no converter: which step, and how to add one."""
    names = unsupported(model) or [str(cause).splitlines()[0]]
    return UnsupportedModelError(
        f"no ONNX converter for {', '.join(names)} (in {describe(model)}): register one in "
        f"{HERE} (how: {CUSTOM_CONVERTERS_DOC}), or return a model from build_model() that "
        "skl2onnx converts"
    )
