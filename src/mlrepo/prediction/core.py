"""The prediction core: a verified model, the check of its input, and its predictions.

Every way of using a model goes through here, side by side: ``mlrepo predict`` scores files
(``mlrepo.predict``), the service answers HTTP (``mlrepo.serve``), drift monitoring predicts the
classes of two samples (``mlrepo.monitor``) and the web app checks uploads (``mlrepo.app``).

- ``load_model(ref)`` is the one way to load: the registry resolves the reference to bytes
  checked against dvc.lock (``registry.resolve``), and ``from_bundle`` deserializes them for a
  backend (``backends.load_predictor``: the ONNX graph, else the scikit-learn pipeline).
- ``LoadedModel.problems(frame)`` is the input check: the schema's features as rules (the
  ranges it records are observed ones, never rules), ``schema.surely_fits`` as the fast yes
  and ``schema.check_frame`` as the verdict.
- ``LoadedModel.predict(frame)`` checks, then predicts: the class and the probabilities.
  ``predict_record(values)`` is the same for one record without a frame (the service's
  single-record path): the same rules (``schema.surely_fits_record``), then the backend's
  own single-record way; anything doubtful goes through ``predict`` on the record's frame,
  which decides and describes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlrepo.bundle import ModelBundle
from mlrepo.errors import DataError
from mlrepo.prediction import PREDICTION, BackendChoice, proba_column
from mlrepo.prediction.backends import OnnxThreads, Predictor, load_predictor
from mlrepo.problems import Problem
from mlrepo.schema import (
    Feature,
    FeatureSchema,
    check_frame,
    surely_fits,
    surely_fits_record,
)

# Suggested fixes when a table to score breaks a rule (the validate stage suggests params).
PREDICT_FIXES = {
    "column_in_schema": "remove the column, or pass it through to the output with --id NAME",
    "column_in_dataframe": "add the column; the model was trained with it",
    "isin": "use one of the categories seen in training",
}


class InvalidInput(DataError):
    """Data to score breaks the model's feature schema; ``problems`` says every way how."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) with the feature values")
        self.problems = problems


@dataclass(frozen=True)
class Predictions:
    """What the model says of each row: the index of the likeliest class and every class's
    probability (columns in ``classes`` order)."""

    classes: list[Any]
    index: np.ndarray
    proba: np.ndarray

    @property
    def labels(self) -> list[Any]:
        return [self.classes[i] for i in self.index]


@dataclass(frozen=True)
class LoadedModel:
    bundle: ModelBundle
    predictor: Predictor
    version: str

    @property
    def schema(self) -> FeatureSchema:
        return self.predictor.schema

    @property
    def classes(self) -> list[Any]:
        return list(self.predictor.classes)

    @property
    def features(self) -> list[Feature]:
        return self.schema.features

    def problems(
        self, frame: pd.DataFrame, fixes: dict[str, str] | None = None, first_row: int = 1
    ) -> list[Problem]:
        """Every way ``frame`` breaks the schema; row numbers count from ``first_row``."""
        return check_input(frame, self.features, fixes, first_row)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities of a frame already checked (``problems`` found none)."""
        return self.predictor.predict_proba(frame)

    def predict(self, frame: pd.DataFrame, fixes: dict[str, str] | None = None) -> Predictions:
        """Check ``frame`` (raise ``InvalidInput`` listing every problem), then predict."""
        if problems := self.problems(frame, fixes):
            raise InvalidInput(problems)
        proba = self.predict_proba(frame)
        return Predictions(self.classes, proba.argmax(axis=1), proba)

    def predict_record(self, values: list[Any], fixes: dict[str, str] | None = None) -> Predictions:
        """``predict`` of the one-row frame of ``values`` (in schema order, numbers as floats
        or None), the same verdict and the same probabilities, without the frame when the
        record surely fits and the backend can take it as it is."""
        if surely_fits_record(values, self.features):
            proba = self.predictor.record_proba(values)
            if proba is not None:
                return Predictions(self.classes, proba.argmax(axis=1), proba)
        return self.predict(typed_frame([values], self.schema), fixes)


def load_model(
    ref: str | None = None, backend: BackendChoice = "auto", root: str | Path = "."
) -> LoadedModel:
    """Resolve ``ref`` (None: the production model) to verified bytes and load them."""
    from mlrepo.registry import resolve  # gto and dvc: slow imports, only for a reference

    return from_bundle(resolve(ref, root=root), backend)


def from_bundle(
    bundle: ModelBundle, backend: BackendChoice = "auto", onnx_threads: OnnxThreads = (1, 1)
) -> LoadedModel:
    """Deserialize a verified bundle for ``backend`` (``onnx_threads``: intra, inter op)."""
    predictor = load_predictor(bundle, backend, onnx_threads)
    return LoadedModel(bundle, predictor, model_version(bundle))


def model_version(bundle: ModelBundle) -> str:
    """The registry version, else the commit, else the md5 of the model file (workspace)."""
    if bundle.version:
        return bundle.version
    if bundle.rev:
        return bundle.rev[:12]
    return "md5-" + hashlib.md5(bundle.files["pipeline"]).hexdigest()[:12]


def check_input(
    frame: pd.DataFrame,
    features: list[Feature],
    fixes: dict[str, str] | None = None,
    first_row: int = 1,
) -> list[Problem]:
    """Every way ``frame`` breaks the schema (``schema.check_frame``, strict, categories
    checked), after ``schema.surely_fits``' fast yes; row numbers count from ``first_row``."""
    if surely_fits(frame, features):
        return []
    return check_frame(
        frame,
        features,
        strict=True,
        check_categories=True,
        fixes={**PREDICT_FIXES, **(fixes or {})},
        first_row=first_row,
    )


def typed_frame(rows: list[list[Any]], schema: FeatureSchema) -> pd.DataFrame:
    """Records of typed values (in schema order) as a frame: numbers as float64 (None as
    NaN), categories as objects."""
    return columns_frame(
        {f.name: [row[i] for row in rows] for i, f in enumerate(schema.features)}, schema
    )


def columns_frame(columns: dict[str, list[Any]], schema: FeatureSchema) -> pd.DataFrame:
    """Typed values by feature name as a frame: numbers as float64 (None as NaN), categories
    as objects."""
    arrays = {
        f.name: np.asarray(columns[f.name], dtype="float64" if f.kind == "numeric" else object)
        for f in schema.features
    }
    return pd.DataFrame(arrays, columns=schema.names, copy=False)


def score(model: LoadedModel, frame: pd.DataFrame, keep: list[str]) -> pd.DataFrame:
    """``keep`` columns of ``frame`` unchanged, the predicted class and one column per class."""
    proba = model.predict_proba(frame)
    classes = np.asarray(model.classes, dtype=object)
    out = frame[keep].reset_index(drop=True)
    out[PREDICTION] = pd.Series(classes[proba.argmax(axis=1)], dtype=_class_dtype(classes))
    for i, cls in enumerate(model.classes):
        out[proba_column(cls)] = proba[:, i]
    return out


def _class_dtype(classes: np.ndarray) -> Any:
    return "int64" if all(isinstance(c, int) and not isinstance(c, bool) for c in classes) else None
