"""Turn a verified ``ModelBundle`` into something that predicts: one interface, two backends.

``Predictor.predict_proba(frame)`` takes a frame already checked with ``schema.check_frame`` and
returns one probability column per class, in ``classes`` order. Everything above the core
(``mlrepo.prediction.core``) uses only this interface, so batch scoring, the service and drift
monitoring behave the same whichever backend loaded the model.

``load_predictor`` prefers the ONNX graph the export stage wrote: onnxruntime loads a graph, so
loading runs no code (unpickling can), and one row predicts in microseconds. The graph takes one
input per feature, in schema order (numeric as double [N, 1], categorical as string [N, 1]); its
second output holds the probabilities. A version without ONNX (``export.on_unsupported:
fallback`` wrote an empty file, or it predates the export stage) is served by the hash-verified
scikit-learn pipeline, and ``fallback_reason`` says why.
"""

from __future__ import annotations

import io
import threading
from typing import Any, Literal, Protocol

import joblib
import numpy as np
import onnxruntime as ort
import pandas as pd

from mlrepo.bundle import MODEL_FILES, ModelBundle
from mlrepo.errors import MlrepoError, first_line
from mlrepo.models import for_prediction
from mlrepo.prediction import BackendChoice
from mlrepo.schema import FeatureSchema, Kind, coerce

Backend = Literal["onnx", "sklearn"]
# onnxruntime's threads within an operator and across operators. One each by default: one
# record gains nothing from more, and a tree ensemble's sums stay in one order (same bits).
OnnxThreads = tuple[int, int]
# The ONNX input type of each feature kind: the dtypes the fitted pipeline sees after coerce.
INPUT_TYPES: dict[Kind, str] = {"numeric": "tensor(double)", "categorical": "tensor(string)"}
# A null category is unknown to the one-hot encoder in both backends (all zeros): the graph
# takes it as the empty string.
NULL_CATEGORY = ""


class OnnxUnavailableError(MlrepoError):
    """An ONNX graph cannot be loaded, or does not take the model's features."""


class Predictor(Protocol):
    backend: Backend
    schema: FeatureSchema
    classes: list[Any]
    fallback_reason: str | None  # why ONNX is not used; None when it is

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray: ...

    def record_proba(self, values: list[Any]) -> np.ndarray | None:
        """``predict_proba`` of one record already checked (values in schema order, numbers as
        floats or None), or None when the backend has no faster way than its frame."""


class SklearnPredictor:
    """The hash-verified scikit-learn ``Pipeline``, predicting single-threaded."""

    backend: Backend = "sklearn"

    def __init__(self, bundle: ModelBundle, fallback_reason: str | None = None) -> None:
        # Only reached after bundle.verify: the bytes are the ones dvc.lock recorded.
        self.pipeline = for_prediction(joblib.load(io.BytesIO(bundle.files["pipeline"])))
        self.schema = FeatureSchema.model_validate(bundle.metadata["feature_schema"])
        self.classes = list(self.schema.classes)
        self.fallback_reason = fallback_reason

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        proba: np.ndarray = self.pipeline.predict_proba(coerce(frame, self.schema))
        return proba

    def record_proba(self, values: list[Any]) -> None:
        return None  # the pipeline's own per-call cost dwarfs the frame's


class OnnxPredictor:
    """The exported ONNX graph run by onnxruntime (no pickle), on one thread unless told."""

    backend: Backend = "onnx"
    fallback_reason: str | None = None

    def __init__(
        self,
        onnx_bytes: bytes,
        schema: FeatureSchema,
        where: str = "the exported ONNX graph",
        threads: OnnxThreads = (1, 1),
    ) -> None:
        """Load a graph; ``where`` names it in errors (the export stage checks a graph not yet
        in a bundle with this). ``threads``: onnxruntime's intra- and inter-op threads."""
        if not onnx_bytes:
            raise OnnxUnavailableError(f"{where} is empty: there is no ONNX graph to load")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads
        options.log_severity_level = 3  # errors only; they are raised below anyway
        try:
            self.session = ort.InferenceSession(
                onnx_bytes, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own unrelated exception types
            raise OnnxUnavailableError(
                f"{where}: onnxruntime {ort.__version__} cannot load it: {first_line(exc)}"
            ) from None
        self.schema = schema
        self.classes = list(schema.classes)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._kinds = [f.kind for f in schema.features]
        self._proba_output = self.outputs[1:]
        self._buffers = threading.local()  # record_proba's inputs, one set per thread
        expected = [INPUT_TYPES[f.kind] for f in schema.features]
        found = [i.type for i in self.session.get_inputs()]
        if found != expected or len(self.outputs) != 2:
            raise OnnxUnavailableError(
                f"{where} does not fit the feature schema: expected {len(expected)} inputs"
                f" {expected} and 2 outputs (label, probabilities), found {found} and"
                f" {self.outputs}. Fix: re-run the export stage (`dvc repro export`)"
            )

    def feeds(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The graph's inputs for ``frame``, as ``schema.coerce`` types them: [N, 1] per feature.

        By position, because skl2onnx renames an input that clashes with an output or is not a
        valid identifier (``label`` becomes ``label1``).
        """
        columns = _canonical_columns(frame, self.schema)
        if columns is None:
            x = coerce(frame, self.schema)
            columns = [
                x[f.name].to_numpy(dtype=np.float64)
                if f.kind == "numeric"
                else x[f.name].fillna(NULL_CATEGORY).to_numpy(dtype=object)
                for f in self.schema.features
            ]
        return {
            name: values.reshape(-1, 1) for name, values in zip(self.inputs, columns, strict=True)
        }

    def record_proba(self, values: list[Any]) -> np.ndarray:
        """The probabilities of one record, fed straight from its values: the [1, 1] inputs
        ``feeds`` would build from the record's frame, in buffers this thread reuses (making
        22 small arrays costs more than running the graph)."""
        feeds = getattr(self._buffers, "feeds", None)
        if feeds is None:
            feeds = self._buffers.feeds = {
                name: np.empty((1, 1), dtype=np.float64 if kind == "numeric" else object)
                for name, kind in zip(self.inputs, self._kinds, strict=True)
            }
        for buffer, kind, value in zip(feeds.values(), self._kinds, values, strict=True):
            if value is None:
                value = np.nan if kind == "numeric" else NULL_CATEGORY
            buffer[0, 0] = value
        proba = self.session.run(self._proba_output, feeds)[0]
        return np.asarray(proba, dtype=np.float64)

    def run(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The graph's two outputs as computed: predicted labels and probabilities."""
        labels, proba = self.session.run(self.outputs, self.feeds(frame))
        return np.asarray(labels).ravel(), np.asarray(proba)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.run(frame)[1], dtype=np.float64)


def _canonical_columns(frame: pd.DataFrame, schema: FeatureSchema) -> list[np.ndarray] | None:
    """The feature columns as arrays when ``coerce`` would only cast them, else None.

    That is numbers in a numeric (not bool) dtype and categories that are all strings, what
    a service request or a Parquet file usually holds; building coerce's frame costs
    milliseconds per call, 20 times what onnxruntime needs for one row.
    """
    columns = []
    for feature in schema.features:
        column = frame[feature.name]
        if feature.kind == "numeric":
            dtype = column.dtype
            if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
                return None
            columns.append(column.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            values = column.to_numpy(dtype=object)
            if pd.api.types.infer_dtype(values, skipna=False) != "string":
                return None
            columns.append(values)
    return columns


def load_predictor(
    bundle: ModelBundle, backend: BackendChoice = "auto", onnx_threads: OnnxThreads = (1, 1)
) -> Predictor:
    """The predictor for ``bundle``: ONNX when the version has a non-empty graph, else sklearn.

    ``backend="onnx"`` raises instead of falling back; ``"sklearn"`` skips ONNX, a choice rather
    than a fallback (``fallback_reason`` stays None, so the service does not report one).
    """
    if backend == "sklearn":
        return SklearnPredictor(bundle)
    reason = onnx_missing_reason(bundle)
    if reason is None:
        schema = FeatureSchema.model_validate(bundle.metadata["feature_schema"])
        where = f"{bundle.source}: {MODEL_FILES['onnx']}"
        return OnnxPredictor(bundle.files["onnx"], schema, where, onnx_threads)
    if backend == "onnx":
        raise OnnxUnavailableError(
            f"{bundle.source}: the ONNX backend was requested but {reason}. Fix: use the auto or"
            " sklearn backend, or re-export a model skl2onnx can convert"
        )
    return SklearnPredictor(bundle, fallback_reason=reason)


def onnx_missing_reason(bundle: ModelBundle) -> str | None:
    """Why ``bundle`` has no usable ONNX graph, or None when it has one."""
    path = MODEL_FILES["onnx"]
    if "onnx" not in bundle.files:
        return f"this version has no {path} (it was made before the export stage)"
    if bundle.files["onnx"]:
        return None
    export = bundle.metrics.get("export") or {}
    policy = export.get("on_unsupported", "fallback")
    # The export stage's message ends with the fix for the stage; /model needs the cause only.
    reason = str(export.get("reason") or "not recorded in metrics/export.json")
    return f"{path} is empty: export.on_unsupported={policy}, reason: {reason.split('. Fix: ')[0]}"
