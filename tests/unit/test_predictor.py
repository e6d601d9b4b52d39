"""Predictors: the ONNX graph and the scikit-learn pipeline of one model version predict the same,
for the model `dvc repro` builds and for string-label multiclass; one row and 10k rows; a version
without a graph falls back to scikit-learn and says why; loading the graph unpickles nothing."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from dvc_harness import copy_tracked_files
from sklearn.pipeline import Pipeline
from sklearn.semi_supervised import LabelSpreading

from mlrepo.bundle import MODEL_FILES, ModelBundle, read_workspace_bundle
from mlrepo.io import read_table
from mlrepo.metrics import predicted_labels
from mlrepo.params import (
    ExportParams,
    FeaturizeParams,
    GenerateParams,
    TrainParams,
    ValidateParams,
)
from mlrepo.prediction.backends import (
    OnnxPredictor,
    OnnxUnavailableError,
    SklearnPredictor,
    _canonical_columns,
    load_predictor,
)
from mlrepo.schema import FeatureSchema, check_frame
from mlrepo.stages.export import export
from mlrepo.stages.featurize import Split, featurize
from mlrepo.stages.generate import generate
from mlrepo.stages.train import train
from mlrepo.stages.validate import validate

PROJECT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5


def _agree(onnx: np.ndarray, sklearn: np.ndarray, classes: list[object]) -> None:
    assert onnx.shape == sklearn.shape and onnx.dtype == np.float64
    assert (predicted_labels(onnx, classes) == predicted_labels(sklearn, classes)).all()
    assert np.abs(onnx - sklearn).max() <= TOLERANCE


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git copy of the project (tracked and new, not ignored, files) after `dvc repro export`."""
    root = tmp_path_factory.mktemp("reproduced")
    copy_tracked_files(PROJECT, root)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env |= {"PYTHONPATH": str(root / "src"), "DVC_NO_ANALYTICS": "1"}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "-c", "commit.gpgsign=false"]
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        [*git, "commit", "-q", "-m", "project"],
        [str(bin_dir / "dvc"), "repro", "export"],
    ):
        done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}"
    return root


@pytest.mark.dvc
def test_the_reproduced_model_predicts_the_same_with_both_backends(reproduced: Path) -> None:
    bundle = read_workspace_bundle(reproduced)  # md5s checked against dvc.lock, the graph's too
    onnx = load_predictor(bundle)
    sklearn = load_predictor(bundle, backend="sklearn")
    assert isinstance(onnx, OnnxPredictor) and onnx.fallback_reason is None
    assert isinstance(sklearn, SklearnPredictor) and sklearn.fallback_reason is None
    assert bundle.metrics["export"]["converted"] and bundle.metrics["export"]["passed"]
    test = read_table(reproduced / "data" / "split" / "test.parquet")
    frame = test[onnx.schema.names]
    assert check_frame(frame, onnx.schema.features) == []
    _agree(onnx.predict_proba(frame), sklearn.predict_proba(frame), onnx.classes)


@pytest.mark.dvc
def test_one_row_and_ten_thousand_rows(reproduced: Path) -> None:
    bundle = read_workspace_bundle(reproduced)
    onnx, sklearn = load_predictor(bundle, "onnx"), load_predictor(bundle, "sklearn")
    test = read_table(reproduced / "data" / "split" / "test.parquet")[onnx.schema.names]
    one = test.iloc[[3]]
    assert onnx.predict_proba(one).shape == (1, len(onnx.classes))
    _agree(onnx.predict_proba(one), sklearn.predict_proba(one), onnx.classes)
    many = test.sample(10_000, replace=True, random_state=0).reset_index(drop=True)
    _agree(onnx.predict_proba(many), sklearn.predict_proba(many), onnx.classes)


def _bundle(
    pipeline: Pipeline, graph: bytes | None, schema: FeatureSchema, **metrics: object
) -> ModelBundle:
    """A bundle as read_workspace_bundle returns it (``graph`` None: no models/model.onnx)."""
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    files = {"pipeline": buffer.getvalue(), "metadata": b"{}"}
    if graph is not None:
        files["onnx"] = graph
    metadata = {"feature_schema": schema.model_dump()}
    return ModelBundle(files=files, metadata=metadata, metrics=dict(metrics), source="tmp")


def _model(split: Split, schema: FeatureSchema, params: TrainParams) -> tuple[Pipeline, bytes]:
    pipeline = train(split.train, schema, split.preprocessor, params).pipeline
    return pipeline, export(pipeline, split.test, schema, ExportParams()).onnx_bytes


def test_string_labels_of_three_classes(small_train: Callable[..., TrainParams]) -> None:
    path = str(PROJECT / "data" / "external" / "example.csv")
    frame = generate(GenerateParams(source="file", path=path, target="segment"))
    result = validate(frame, "segment", ValidateParams(drop_columns=["customer_id"]))
    assert result.frame is not None and result.schema is not None
    schema = result.schema
    split = featurize(result.frame, schema, FeaturizeParams())
    bundle = _bundle(*_model(split, schema, small_train("hist_gradient_boosting")), schema)
    onnx, sklearn = load_predictor(bundle), load_predictor(bundle, "sklearn")
    assert onnx.backend == "onnx" and onnx.classes == ["bronze", "gold", "silver"]
    proba = onnx.predict_proba(split.test)
    _agree(proba, sklearn.predict_proba(split.test), onnx.classes)
    assert set(predicted_labels(proba, onnx.classes)) <= {"bronze", "gold", "silver"}


def test_unknown_and_missing_categories_predict_as_in_sklearn(
    split: Split, schema: FeatureSchema, small_train: Callable[..., TrainParams]
) -> None:
    bundle = _bundle(*_model(split, schema, small_train("logistic_regression")), schema)
    frame = split.test[schema.names].copy()
    frame.loc[::3, "cat_0"] = "never seen"
    frame.loc[1::3, "cat_1"] = None
    onnx, sklearn = load_predictor(bundle), load_predictor(bundle, "sklearn")
    _agree(onnx.predict_proba(frame), sklearn.predict_proba(frame), onnx.classes)


def test_frames_of_other_dtypes_predict_as_in_sklearn(
    split: Split, schema: FeatureSchema, small_train: Callable[..., TrainParams]
) -> None:
    bundle = _bundle(*_model(split, schema, small_train("hist_gradient_boosting")), schema)
    onnx, sklearn = load_predictor(bundle), load_predictor(bundle, "sklearn")
    test = split.test[schema.names]
    # The test split's own dtypes skip building coerce's frame (the single-row fast path).
    assert _canonical_columns(test, schema) is not None
    variants = [
        test.assign(num_00=test["num_00"].round().astype("int64")),
        test.assign(num_01=test["num_01"].astype("float32")),
        test.assign(num_02=test["num_02"].astype(str)),  # numbers as text pass check_frame
        test.assign(cat_0=test["cat_0"].astype("category")),
        test.assign(cat_1=test["cat_1"].astype(object).where(test.index % 4 > 0, None)),
    ]
    for frame in variants:
        _agree(onnx.predict_proba(frame), sklearn.predict_proba(frame), onnx.classes)


def test_inputs_are_fed_by_position_when_skl2onnx_renames_them(
    raw_frame: pd.DataFrame, small_train: Callable[..., TrainParams]
) -> None:
    # "label" and "probabilities" clash with the graph's outputs; "/" and "€" are not allowed.
    names = {"num_00": "label", "num_01": "probabilities", "cat_0": "plan type/€"}
    result = validate(raw_frame.rename(columns=names), "target", ValidateParams())
    assert result.frame is not None and result.schema is not None
    split = featurize(result.frame, result.schema, FeaturizeParams())
    bundle = _bundle(*_model(split, result.schema, small_train()), result.schema)
    onnx, sklearn = load_predictor(bundle), load_predictor(bundle, "sklearn")
    assert isinstance(onnx, OnnxPredictor) and onnx.inputs != result.schema.names
    _agree(onnx.predict_proba(split.test), sklearn.predict_proba(split.test), onnx.classes)


def test_loading_the_graph_unpickles_nothing(
    split: Split, schema: FeatureSchema, small_train: Callable[..., TrainParams]
) -> None:
    pipeline, graph = _model(split, schema, small_train())
    bundle = _bundle(pipeline, graph, schema)
    bundle.files["pipeline"] = b"not a pickle: loading it would fail"
    proba = load_predictor(bundle).predict_proba(split.test)
    assert proba.shape == (len(split.test), 2)
    with pytest.raises(KeyError):  # the scikit-learn backend has to unpickle those bytes
        load_predictor(bundle, "sklearn")


def _fallback_bundle(split: Split, schema: FeatureSchema) -> ModelBundle:
    """A version whose export used on_unsupported: fallback (empty graph, reason in metrics)."""
    preprocess = split.preprocessor
    model = LabelSpreading().fit(
        preprocess.transform(split.train[schema.names]), split.train.target
    )
    pipeline = Pipeline([("preprocess", preprocess), ("model", model)])
    exported = export(pipeline, split.test, schema, ExportParams(on_unsupported="fallback"))
    assert exported.onnx_bytes == b""
    return _bundle(pipeline, exported.onnx_bytes, schema, export=exported.parity)


def test_an_empty_graph_falls_back_to_sklearn_and_says_why(
    split: Split, schema: FeatureSchema
) -> None:
    bundle = _fallback_bundle(split, schema)
    predictor = load_predictor(bundle)
    assert isinstance(predictor, SklearnPredictor) and predictor.backend == "sklearn"
    reason = predictor.fallback_reason or ""
    assert reason.startswith(f"{MODEL_FILES['onnx']} is empty: export.on_unsupported=fallback")
    assert "reason: cannot export LabelSpreading" in reason
    assert predictor.predict_proba(split.test).shape == (len(split.test), 2)
    with pytest.raises(OnnxUnavailableError, match="ONNX backend was requested but"):
        load_predictor(bundle, backend="onnx")


def test_a_version_made_before_the_export_stage_falls_back(
    split: Split, schema: FeatureSchema, small_train: Callable[..., TrainParams]
) -> None:
    pipeline, _ = _model(split, schema, small_train())
    predictor = load_predictor(_bundle(pipeline, None, schema))
    assert predictor.backend == "sklearn"
    assert "made before the export stage" in (predictor.fallback_reason or "")


def test_a_graph_that_does_not_take_the_schema_is_refused(
    split: Split, schema: FeatureSchema, small_train: Callable[..., TrainParams]
) -> None:
    pipeline, graph = _model(split, schema, small_train())
    fewer = schema.model_copy(update={"features": schema.features[:-1]})
    with pytest.raises(OnnxUnavailableError, match="does not fit the feature schema"):
        load_predictor(_bundle(pipeline, graph, fewer))
