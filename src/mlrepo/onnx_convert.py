"""A fitted scikit-learn Pipeline as ONNX bytes, with skl2onnx's gaps filled and its failures
explained.

The graph (skl2onnx, ZipMap off) takes one input per feature in schema order, numeric as double
[N, 1] and categorical as string [N, 1], and outputs the label and the probabilities. Each part
computes in the dtype scikit-learn uses, because a value that sits on a tree split (integer
columns after scaling often do) goes the other way when compared in another precision:
preprocessing, linear models and HistGradientBoosting (double thresholds, ai.onnx.ml opset 3) in
float64; forests and GradientBoosting on a float32 cast of the features, as scikit-learn does;
SVC's ONNX operator only has float32 coefficients. XGBoost and LightGBM (``mlrepo.models.Booster``)
go through onnxmltools' converters: XGBoost on float32 features (its own DMatrix is float32),
LightGBM with float64 thresholds like HistGradientBoosting (it compares doubles); both output the
original labels, not the codes the library was fitted on.

What skl2onnx or onnxruntime cannot handle is an ``UnsupportedModelError`` naming the step of
the pipeline and what to change. The bytes are the same for the same pipeline and library
versions: the graph's name is fixed and its opsets are sorted.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
import onnxruntime
import skl2onnx
from onnx import numpy_helper
from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
from skl2onnx.operator_converters.random_forest import convert_sklearn_random_forest_classifier
from skl2onnx.sklapi import CastTransformer
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.tree import DecisionTreeClassifier

from mlrepo.errors import MlrepoError, first_line
from mlrepo.models import Booster
from mlrepo.prediction.backends import OnnxPredictor, OnnxUnavailableError
from mlrepo.schema import FeatureSchema

TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
# scikit-learn's own trees predict on float32 features; HistGradientBoosting does not.
FLOAT32_TREES = (
    DecisionTreeClassifier,
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
)
CONTAINERS = (Pipeline, ColumnTransformer, FeatureUnion)
# Preprocessing steps that featurize adds because of a param, and the param that avoids them.
STEP_FIXES = {"SimpleImputer": "set validate.missing to drop or error, so no imputer is needed"}


class UnsupportedModelError(MlrepoError):
    """skl2onnx cannot convert a step of the pipeline, or onnxruntime cannot run the result."""


def converter_versions(model: Any) -> dict[str, str]:
    """The versions of the libraries that convert and run ``model``: the bytes depend on them."""
    versions = {
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "skl2onnx": skl2onnx.__version__,
    }
    if isinstance(model, Booster):
        import onnxmltools

        versions["onnxmltools"] = onnxmltools.__version__
    return versions


def to_onnx(pipeline: Pipeline, schema: FeatureSchema) -> bytes:
    """The ONNX bytes of ``pipeline``: byte-identical for the same pipeline and versions."""
    model = pipeline.steps[-1][1]
    if isinstance(model, Booster):
        _register_booster_converter()
    if isinstance(model, FLOAT32_TREES) or _is_xgboost(model):
        steps = [*pipeline.steps[:-1], ("float32", CastTransformer(dtype=np.float32))]
        pipeline = Pipeline([*steps, pipeline.steps[-1]])
    kinds = {"numeric": DoubleTensorType([None, 1]), "categorical": StringTensorType([None, 1])}
    try:
        converted = skl2onnx.convert_sklearn(
            pipeline,
            name="mlrepo",  # the default is a random uuid: the bytes would differ every run
            initial_types=[(f.name, kinds[f.kind]) for f in schema.features],
            options={id(model): {"zipmap": False}},
            target_opset=TARGET_OPSET,
            custom_conversion_functions={HistGradientBoostingClassifier: _hist_gradient_boosting},
        )
    except Exception as exc:  # skl2onnx signals "unsupported" with many exception types
        problem = f"skl2onnx {skl2onnx.__version__} cannot convert it: {_stable_first_line(exc)}"
        raise _unsupported(pipeline, _failing_estimator(exc), problem) from None
    # skl2onnx collects the opsets in a set: their order would follow PYTHONHASHSEED.
    opsets = sorted((o.domain, o.version) for o in converted.opset_import)
    del converted.opset_import[:]
    converted.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets)
    return bytes(converted.SerializeToString())


def session(onnx_bytes: bytes, schema: FeatureSchema, pipeline: Pipeline) -> OnnxPredictor:
    """An onnxruntime session of the graph, or the error naming the step it cannot run."""
    try:
        return OnnxPredictor(onnx_bytes, schema)
    except OnnxUnavailableError as exc:
        # onnxruntime names the ONNX operator (Imputer); the step is the estimator named so.
        match = re.search(r"implementation for (\w+)\(", str(exc))
        leaves = [e for _, e in _components(pipeline) if not isinstance(e, CONTAINERS)]
        named = [e for e in leaves if match and type(e).__name__.endswith(match.group(1))]
        problem = f"onnxruntime {onnxruntime.__version__} cannot run the graph skl2onnx made"
        problem += f" from it: {_stable_first_line(exc).split('cannot load it: ')[-1]}"
        raise _unsupported(pipeline, named[0] if named else None, problem) from None


def _unsupported(pipeline: Pipeline, culprit: Any | None, problem: str) -> UnsupportedModelError:
    """The error naming the estimator that cannot go to ONNX, and what to change."""
    model = pipeline.steps[-1][1]
    if culprit is None:
        leaves = [e for _, e in _components(pipeline) if not isinstance(e, CONTAINERS)]
        what = "a step of the pipeline (" + ", ".join(_describe(pipeline, e) for e in leaves) + ")"
    else:
        what = _describe(pipeline, culprit)
    if type(culprit).__name__ in STEP_FIXES:
        fix = STEP_FIXES[type(culprit).__name__]
    elif culprit is None or culprit is model:
        fix = "choose a train.model skl2onnx converts"
    else:
        fix = "change the preprocessing (featurize) so that it has no such step"
    return UnsupportedModelError(
        f"cannot export {what} to ONNX: {problem}. Fix: {fix}, or set export.on_unsupported:"
        " fallback to serve the scikit-learn pipeline instead"
    )


class _DoubleTrees:
    """skl2onnx's container with its tree attributes kept in float64 (ai.onnx.ml opset 3).

    skl2onnx 1.20 writes HistGradientBoosting thresholds as float32 (opset 1) although
    scikit-learn compares float64 with float64, and passes bools that protobuf 7 rejects.
    """

    def __init__(self, scope: Any, container: Any, to: int | None) -> None:
        self._scope, self._container, self._to = scope, container, to

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, op_type: str, inputs: Any, outputs: Any, **attrs: Any) -> Any:
        if op_type != "TreeEnsembleClassifier":
            return self._container.add_node(op_type, inputs, outputs, **attrs)
        for key in ("nodes_values", "class_weights", "base_values", "nodes_hitrates"):
            if key in attrs:
                values = np.asarray(attrs.pop(key), dtype=np.float64)
                attrs[f"{key}_as_tensor"] = numpy_helper.from_array(values)
        flags = attrs["nodes_missing_value_tracks_true"]
        attrs["nodes_missing_value_tracks_true"] = [int(flag) for flag in flags]
        attrs["op_version"] = 3
        if self._to is None:
            return self._container.add_node(op_type, inputs, outputs, **attrs)
        # The operator still outputs float32 probabilities; the pipeline declared float64.
        proba = self._scope.get_unique_variable_name("probabilities_float32")
        self._container.add_node(op_type, inputs, [outputs[0], proba], **attrs)
        name = self._scope.get_unique_operator_name("Cast")
        return self._container.add_node("Cast", [proba], [outputs[1]], name=name, to=self._to)


def _hist_gradient_boosting(scope: Any, operator: Any, container: Any) -> None:
    double = isinstance(operator.outputs[1].type, DoubleTensorType)
    to = onnx.TensorProto.DOUBLE if double else None
    convert_sklearn_random_forest_classifier(
        scope, operator, _DoubleTrees(scope, container, to), op_version=3
    )


def estimator_name(model: Any) -> str:
    """The model's class name; the library's own for a Booster (XGBClassifier, LGBMClassifier)."""
    return type(model.estimator_ if isinstance(model, Booster) else model).__name__


def _is_xgboost(model: Any) -> bool:
    return isinstance(model, Booster) and type(model.estimator_).__module__.startswith("xgboost")


@functools.cache
def _register_booster_converter() -> None:
    """Teach skl2onnx the Booster: a classifier (label + probabilities, zipmap option)."""
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    skl2onnx.update_registered_converter(
        Booster,
        "MlrepoBooster",
        calculate_linear_classifier_output_shapes,
        _booster,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def _booster(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' converter of the fitted library model, given the Booster's labels."""
    booster = operator.raw_operator
    # The converters read the labels from classes_: the codes 0..K-1 the library was fitted on.
    model = copy.copy(booster.estimator_)
    model.__class__ = type(type(model).__name__, (type(model),), {"classes_": booster.classes_})
    operator.raw_operator = model
    try:
        if _is_xgboost(booster):
            from onnxmltools.convert.xgboost.operator_converters.XGBoost import (
                XGBClassifierConverter,
            )

            XGBClassifierConverter.validate(model)
            XGBClassifierConverter.convert(scope, operator, container)
        else:
            from onnxmltools.convert.lightgbm.operator_converters.LightGbm import (
                convert_lightgbm,
            )

            double = isinstance(operator.outputs[1].type, DoubleTensorType)
            to = onnx.TensorProto.DOUBLE if double else None
            convert_lightgbm(scope, operator, _DoubleTrees(scope, container, to))
    finally:
        operator.raw_operator = booster


def _components(estimator: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every estimator inside ``estimator`` with its path of step names."""
    yield "/".join(path), estimator
    if isinstance(estimator, Pipeline):
        children = [(name, step) for name, step in estimator.steps]
    elif isinstance(estimator, ColumnTransformer):
        children = [(name, step) for name, step, _ in estimator.transformers_]
    elif isinstance(estimator, FeatureUnion):
        children = list(estimator.transformer_list)
    else:
        children = []
    for name, child in children:
        if not isinstance(child, str):  # "drop" / "passthrough"
            yield from _components(child, (*path, name))


def _describe(pipeline: Pipeline, estimator: Any) -> str:
    paths = [path for path, e in _components(pipeline) if e is estimator]
    name = type(estimator).__name__
    return f"{name} (step {paths[0]})" if paths and paths[0] else name


def _failing_estimator(exc: BaseException) -> Any | None:
    """The estimator skl2onnx was converting when it raised (innermost one on the stack)."""
    found, tb = None, exc.__traceback__
    while tb is not None:
        local = tb.tb_frame.f_locals
        operator = local.get("operator")
        if operator is not None and hasattr(operator, "raw_operator"):
            found = operator.raw_operator
        elif hasattr(local.get("model"), "get_params"):
            found = local["model"]
        tb = tb.tb_next
    return found


def _stable_first_line(exc: BaseException) -> str:
    """``first_line``, with no memory addresses (it goes into metrics, which must repeat)."""
    return re.sub(r" at 0x[0-9a-f]+", "", first_line(exc)).rstrip(".")
