"""Where the two samples come from: the reference (a table, or a registered model's training
data) and the current data (a table, or a window of the service's prediction log), with the
model that predicts their classes.

The registry and the prediction log are imported only when a reference or a window needs them:
both pull in slow imports (gto, dvc, SQLAlchemy) that a comparison of two files does not need.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlrepo.artifacts import TRAINING_TABLE
from mlrepo.bundle import ModelBundle
from mlrepo.errors import DataError, MlrepoError, first_line
from mlrepo.io import TABLE_SUFFIXES, read_table
from mlrepo.prediction import BackendChoice
from mlrepo.schema import Feature, FeatureSchema, categorical_as_str, infer_kind

if TYPE_CHECKING:  # scikit-learn is imported only when a model is used
    from mlrepo.prediction.backends import Predictor
    from mlrepo.prediction.core import LoadedModel

PREDICT_CHUNK_ROWS = 200_000


@dataclass(frozen=True)
class Reference:
    frame: pd.DataFrame
    features: list[Feature]
    label: str  # how reports name it
    model: LoadedModel | None = None  # the model, when the reference brings one
    model_label: str | None = None  # how reports name the model


@dataclass(frozen=True)
class Current:
    frame: pd.DataFrame
    label: str
    predicted: pd.Series | None = None  # classes recorded with the data (the prediction log)
    details: dict[str, Any] = field(default_factory=dict)


def is_table(reference: str) -> bool:
    return reference.lower().endswith(TABLE_SUFFIXES)


def load_reference(
    reference: str, model: str | None = None, root: str | Path = ".", target: str = "target"
) -> Reference:
    """A table path (``.csv``/``.parquet``) with an optional ``model`` reference for the schema
    and the predictions, or a model reference: its training table at that model's revision.

    Without a model the features are the table's columns but ``target``, kinds inferred.
    """
    if not is_table(reference):
        if model is not None:
            raise MlrepoError(
                f"--model is for a table reference; '{reference}' is a model reference, which "
                "brings its own model. Fix: drop --model, or pass the training table as "
                "--reference with --model"
            )
        return _training_data_of(reference, Path(root))
    frame = read_table(reference)
    if model is None:
        features = [
            Feature(name=str(c), kind=infer_kind(frame[c])) for c in frame.columns if c != target
        ]
        return Reference(frame, features, reference)
    bundle = _resolve(model, Path(root))
    return Reference(frame, bundle_schema(bundle).features, reference, *_model(bundle))


def _training_data_of(ref: str, root: Path) -> Reference:
    from mlrepo.registry import find, resolve
    from mlrepo.registry.resolve import read_verified

    target = find(ref, root)
    bundle = resolve(ref, root)
    data = read_verified(
        target,
        TRAINING_TABLE,
        "training data",
        target.snapshot.md5s(),
        unhashed=f", the model's training data. Fix: pass the table as --reference PATH with "
        f"--model {ref}",
        uncached="`dvc fetch` it from the remote, or rebuild it with `dvc repro`",
    )
    try:
        frame = pq.read_table(io.BytesIO(data)).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{target.label}: {TRAINING_TABLE} is not readable Parquet: {exc}"
        ) from None
    label = f"{TRAINING_TABLE} of {target.label}"
    return Reference(frame, bundle_schema(bundle).features, label, *_model(bundle))


def _resolve(ref: str, root: Path) -> ModelBundle:
    from mlrepo.registry import resolve

    return resolve(ref, root)


def bundle_schema(bundle: ModelBundle) -> FeatureSchema:
    return FeatureSchema.model_validate(bundle.metadata["feature_schema"])


def _model(bundle: ModelBundle, backend: BackendChoice = "auto") -> tuple[LoadedModel, str]:
    from mlrepo.prediction.core import from_bundle  # scikit-learn, onnxruntime: on use

    model = from_bundle(bundle, backend)
    return model, f"{model.version} ({bundle.source})"


def load_current(path: str) -> Current:
    return Current(read_table(path), path)


def predicted_classes(predictor: Predictor, frame: pd.DataFrame, role: str) -> pd.Series:
    """The class ``predictor`` predicts for each row (as category labels), scored in chunks so
    a large batch never needs its one-hot encoding in memory at once."""
    classes = np.asarray(predictor.classes, dtype=object)
    parts = []
    for start in range(0, len(frame), PREDICT_CHUNK_ROWS):
        chunk = frame.iloc[start : start + PREDICT_CHUNK_ROWS]
        try:
            proba = predictor.predict_proba(chunk)
        except ValueError as exc:
            raise DataError(
                f"the model cannot score the {role} data: {first_line(exc)}. Fix: "
                "give data the model accepts (e.g. no missing values unless it was trained "
                "with some), or leave out --model to compare the features only"
            ) from None
        parts.append(classes[proba.argmax(axis=1)])
    labels = np.concatenate(parts) if parts else np.asarray([], dtype=object)
    return categorical_as_str(pd.Series(labels, dtype=object))
