"""evaluate: metrics, the promotion mark, DVC plot data and byte-stable PNGs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from mlrepo.errors import run_cli
from mlrepo.io import read_table, write_json, write_parquet
from mlrepo.params import (
    EvaluateParams,
    FeaturizeParams,
    GenerateParams,
    TrainParams,
    ValidateParams,
)
from mlrepo.schema import FeatureSchema
from mlrepo.stages import evaluate as evaluate_stage
from mlrepo.stages.evaluate import OUTPUTS, Evaluation, evaluate, write_outputs
from mlrepo.stages.featurize import Split, featurize
from mlrepo.stages.generate import synthesize
from mlrepo.stages.train import train
from mlrepo.stages.validate import validate

LABELS = {2: ["churn", "stay"], 3: ["bronze", "gold", "silver"]}
FAST = EvaluateParams(importance_repeats=2)


def trained_on_strings(
    small_generate: Callable[..., GenerateParams],
    small_train: Callable[..., TrainParams],
    n_classes: int,
) -> tuple[Pipeline, pd.DataFrame, FeatureSchema]:
    raw = synthesize(small_generate(n_classes=n_classes))
    raw["target"] = raw["target"].map(dict(enumerate(LABELS[n_classes])))
    result = validate(raw, "target", ValidateParams())
    assert result.frame is not None and result.schema is not None
    split = featurize(result.frame, result.schema, FeaturizeParams())
    trained = train(split.train, result.schema, split.preprocessor, small_train())
    return trained.pipeline, split.test, result.schema


@pytest.fixture
def score_names(metric_names: list[str]) -> set[str]:
    """Every key of metrics/evaluate.json: the metrics, the test size and the promotion mark."""
    return {*metric_names, "n_test", "min_accuracy", "promotable"}


@pytest.fixture(params=[2, 3], ids=["binary", "3-class"])
def model(
    request: pytest.FixtureRequest,
    small_generate: Callable[..., GenerateParams],
    small_train: Callable[..., TrainParams],
) -> tuple[Pipeline, pd.DataFrame, FeatureSchema]:
    return trained_on_strings(small_generate, small_train, request.param)


def test_metrics_for_string_labels(
    model: tuple[Pipeline, pd.DataFrame, FeatureSchema], score_names: set[str]
) -> None:
    pipeline, test, schema = model
    result = evaluate(pipeline, test, schema, FAST)
    scores = result.scores
    assert set(scores) == score_names
    assert scores["n_test"] == len(test) == 60
    y = test["target"].to_numpy()
    x = test[schema.names]
    proba = pipeline.predict_proba(x)
    np.testing.assert_allclose(result.proba, proba)
    assert scores["accuracy"] == pytest.approx(accuracy_score(y, pipeline.predict(x)))
    assert scores["log_loss"] == pytest.approx(log_loss(y, proba, labels=schema.classes))
    if len(schema.classes) == 2:
        expected_auc = roc_auc_score(y == schema.classes[1], proba[:, 1])
    else:
        expected_auc = roc_auc_score(y, proba, multi_class="ovr", labels=schema.classes)
    assert scores["roc_auc"] == pytest.approx(expected_auc)
    for key in score_names - {"n_test", "min_accuracy", "promotable", "log_loss"}:
        assert 0.0 <= scores[key] <= 1.0, key
    assert scores["accuracy"] > 0.6
    assert set(schema.classes) <= set(result.per_class)
    assert result.per_class["macro avg"]["f1-score"] == pytest.approx(scores["f1_macro"])


def test_plot_data_is_shaped_for_dvc_plots(
    model: tuple[Pipeline, pd.DataFrame, FeatureSchema],
) -> None:
    pipeline, test, schema = model
    result = evaluate(pipeline, test, schema, FAST)
    predictions = result.predictions
    assert predictions.columns.tolist() == ["actual", "predicted"]
    assert len(predictions) == len(test)
    assert predictions["actual"].tolist() == test["target"].tolist()
    assert set(predictions["predicted"]) <= set(schema.classes)
    roc = result.roc
    assert roc.columns.tolist() == ["fpr", "tpr"]
    assert roc.iloc[0].tolist() == [0.0, 0.0] and roc.iloc[-1].tolist() == [1.0, 1.0]
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].is_monotonic_increasing
    pr = result.precision_recall
    assert pr.columns.tolist() == ["precision", "recall"]
    assert pr.to_numpy().min() >= 0 and pr.to_numpy().max() <= 1
    assert pr["recall"].is_monotonic_decreasing
    assert not roc.duplicated().any() and not pr.duplicated().any()
    importance = result.importance
    assert importance.columns.tolist() == ["feature", "importance", "std"]
    assert sorted(importance["feature"]) == sorted(schema.names)
    assert importance["importance"].is_monotonic_decreasing


def test_promotable_follows_min_accuracy(
    split: Split, schema: FeatureSchema, small_train: Callable[..., TrainParams]
) -> None:
    pipeline = train(split.train, schema, split.preprocessor, small_train()).pipeline
    accuracy = evaluate(pipeline, split.test, schema, FAST).scores["accuracy"]
    assert 0.6 < accuracy < 1.0
    for min_accuracy, promotable in [(0.0, True), (accuracy, True), (1.0, False)]:
        params = EvaluateParams(min_accuracy=min_accuracy, importance_repeats=2)
        scores = evaluate(pipeline, split.test, schema, params).scores
        assert scores["promotable"] is promotable
        assert scores["min_accuracy"] == min_accuracy


def test_importance_on_a_sample_of_rows(
    split: Split, schema: FeatureSchema, small_train: Callable[..., TrainParams]
) -> None:
    pipeline = train(split.train, schema, split.preprocessor, small_train()).pipeline
    params = EvaluateParams(importance_max_rows=20, importance_repeats=2)
    first = evaluate(pipeline, split.test, schema, params).importance
    second = evaluate(pipeline, split.test, schema, params).importance
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == len(schema.names)


@pytest.mark.parametrize("model_name", ["random_forest", "hist_gradient_boosting", "svm"])
def test_batched_importance_equals_scikit_learns(
    split: Split,
    schema: FeatureSchema,
    small_train: Callable[..., TrainParams],
    model_name: str,
) -> None:
    """The stacked predictions give the very scores of sklearn's permutation_importance (svm:
    predict is not the argmax of predict_proba, so the scorer's own predict must be used)."""
    from sklearn.inspection import permutation_importance

    from mlrepo.models import for_prediction
    from mlrepo.stages.evaluate import permutation_drops

    pipeline = train(split.train, schema, split.preprocessor, small_train(model=model_name))
    fitted = for_prediction(pipeline.pipeline)
    x = split.test[schema.names].iloc[::-1]  # an index that is not 0..n-1
    y = split.test[schema.target].to_numpy()[::-1]
    ours = permutation_drops(fitted, x, y, repeats=3, seed=7)
    theirs = permutation_importance(
        fitted, x, y, scoring="accuracy", n_repeats=3, random_state=7, n_jobs=1
    )
    np.testing.assert_array_equal(ours, theirs.importances)
    assert ours.any()  # some column matters, so the comparison is not of zeros


def output_paths(folder: Path) -> dict[str, Path]:
    names = {
        "metrics": "metrics/evaluate.json",
        "per_class": "metrics/per_class.json",
        "confusion": "plots/confusion.csv",
        "roc": "plots/roc.csv",
        "precision_recall": "plots/precision_recall.csv",
        "importance": "plots/importance.csv",
        "confusion_png": "plots/confusion_matrix.png",
        "roc_png": "plots/roc.png",
        "importance_png": "plots/feature_importance.png",
    }
    assert set(names) == set(OUTPUTS)
    return {key: folder / name for key, name in names.items()}


def written(
    folder: Path, result: Evaluation, test: pd.DataFrame, schema: FeatureSchema
) -> dict[str, Path]:
    paths = output_paths(folder)
    write_outputs(result, test, schema, paths)
    return paths


def test_write_outputs_writes_every_file_and_pngs_are_byte_identical(
    tmp_path: Path, model: tuple[Pipeline, pd.DataFrame, FeatureSchema], score_names: set[str]
) -> None:
    pipeline, test, schema = model
    first = written(tmp_path / "a", evaluate(pipeline, test, schema, FAST), test, schema)
    second = written(tmp_path / "b", evaluate(pipeline, test, schema, FAST), test, schema)
    for key in OUTPUTS:
        assert first[key].read_bytes() == second[key].read_bytes(), key
    for key in ("confusion_png", "roc_png", "importance_png"):
        assert first[key].read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), key
    headers = {
        "confusion": "actual,predicted",
        "roc": "fpr,tpr",
        "precision_recall": "precision,recall",
        "importance": "feature,importance,std",
    }
    for key, header in headers.items():
        assert first[key].read_text().splitlines()[0] == header
    metrics = json.loads(first["metrics"].read_text())
    assert set(metrics) == score_names
    assert list(metrics) == sorted(metrics)
    assert isinstance(metrics["promotable"], bool)
    per_class = json.loads(first["per_class"].read_text())
    assert set(schema.classes) <= set(per_class)
    assert not list(tmp_path.glob("**/*.tmp")), "no temporary files left behind"


def test_main_marks_a_weak_model_not_promotable_without_failing(
    tmp_path: Path,
    params_file: Callable[[dict[str, Any]], Path],
    split: Split,
    schema: FeatureSchema,
    small_train: Callable[..., TrainParams],
) -> None:
    pipeline = train(split.train, schema, split.preprocessor, small_train()).pipeline
    model_path, test_path = tmp_path / "model.joblib", tmp_path / "test.parquet"
    schema_path = tmp_path / "schema.json"
    joblib.dump(pipeline, model_path)
    write_parquet(split.test, test_path)
    write_json(schema.model_dump(), schema_path)
    params = params_file({"evaluate": {"min_accuracy": 1.0, "importance_repeats": 2}})
    paths = output_paths(tmp_path / "out")
    args = ["--params", str(params), "--model", str(model_path), "--test", str(test_path)]
    args += ["--schema", str(schema_path)]
    for key, path in paths.items():
        args += [f"--{key.replace('_', '-')}", str(path)]
    assert run_cli(evaluate_stage.main, args) == 0
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["promotable"] is False
    assert metrics["min_accuracy"] == 1.0
    assert all(path.exists() for path in paths.values())
    assert len(read_table(paths["confusion"])) == len(split.test)
