"""The export stage: every model converts to an ONNX graph that predicts what scikit-learn does,
also on rows that sit exactly on a split threshold; unsupported steps are named; bytes repeat."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.semi_supervised import LabelSpreading

from mlrepo.errors import EXIT_USER_ERROR, run_cli
from mlrepo.io import write_json, write_parquet
from mlrepo.models import FACTORIES, Booster
from mlrepo.params import (
    ExportParams,
    FeaturizeParams,
    GenerateParams,
    TrainParams,
    ValidateParams,
)
from mlrepo.prediction.backends import OnnxPredictor
from mlrepo.schema import FeatureSchema
from mlrepo.stages.export import (
    ParityError,
    UnsupportedModelError,
    compare,
    export,
    main,
    to_onnx,
)
from mlrepo.stages.featurize import Split, featurize
from mlrepo.stages.generate import generate
from mlrepo.stages.train import train
from mlrepo.stages.validate import validate

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLE = PROJECT / "data" / "external" / "example.csv"
TREES = ("random_forest", "gradient_boosting", "hist_gradient_boosting", "xgboost", "lightgbm")


@cache
def _user_table() -> tuple[Split, FeatureSchema]:
    """data/external/example.csv as the pipeline reads it: 3 string classes, integer columns."""
    frame = generate(GenerateParams(source="file", path=str(EXAMPLE), target="segment"))
    result = validate(frame, "segment", ValidateParams(drop_columns=["customer_id"]))
    assert result.frame is not None and result.schema is not None, result.errors
    return featurize(result.frame, result.schema, FeaturizeParams()), result.schema


@pytest.fixture(params=["synthetic", "user_table"])
def dataset(request: pytest.FixtureRequest, split: Split, schema: FeatureSchema) -> Any:
    """(split, schema) of the small synthetic table or of example.csv."""
    if request.param == "synthetic":
        return split, schema
    user_split, user_schema = _user_table()
    return copy.deepcopy(user_split), user_schema


def _trained(dataset: Any, params: TrainParams) -> Pipeline:
    split, schema = dataset
    return train(split.train, schema, split.preprocessor, params).pipeline


@pytest.mark.parametrize("model", sorted(FACTORIES))
def test_every_model_predicts_like_sklearn_on_the_test_split(
    model: str, dataset: Any, small_train: Callable[..., TrainParams]
) -> None:
    split, schema = dataset
    exported = export(_trained(dataset, small_train(model)), split.test, schema, ExportParams())
    parity = exported.parity
    assert parity["converted"] and parity["passed"]
    assert parity["rows"] == len(split.test)
    assert parity["label_agreement"] == 1.0
    assert parity["predict_agreement"] == 1.0
    assert parity["max_abs_proba_diff"] <= 1e-5
    onnx.checker.check_model(onnx.load_from_string(exported.onnx_bytes), full_check=True)
    kinds = {"numeric": "tensor(double)", "categorical": "tensor(string)"}
    assert [(i["feature"], i["type"]) for i in parity["inputs"]] == [
        (f.name, kinds[f.kind]) for f in schema.features
    ]


def _split_thresholds(model: Any) -> list[tuple[int, float]]:
    """(transformed column, threshold) of every split of a fitted tree ensemble."""
    if isinstance(model, Booster) and hasattr(model.estimator_, "booster_"):  # LightGBM
        trees = model.estimator_.booster_.trees_to_dataframe().dropna(subset=["threshold"])
        columns = [int(name.removeprefix("Column_")) for name in trees["split_feature"]]
        return list(zip(columns, trees["threshold"].astype(float), strict=True))
    if isinstance(model, Booster):  # XGBoost
        trees = model.estimator_.get_booster().trees_to_dataframe()
        trees = trees[trees["Feature"] != "Leaf"]
        columns = [int(name.removeprefix("f")) for name in trees["Feature"]]
        return list(zip(columns, trees["Split"].astype(float), strict=True))
    if hasattr(model, "_predictors"):  # HistGradientBoosting
        nodes = [n for it in model._predictors for tree in it for n in tree.nodes]
        return [
            (int(n["feature_idx"]), float(n["num_threshold"])) for n in nodes if not n["is_leaf"]
        ]
    trees = [estimator.tree_ for estimator in np.ravel(model.estimators_)]
    return [
        (int(feature), float(threshold))
        for tree in trees
        for feature, threshold in zip(tree.feature, tree.threshold, strict=True)
        if feature >= 0
    ]


def _rows_on_thresholds(pipeline: Pipeline, frame: pd.DataFrame, schema: FeatureSchema) -> Any:
    """Test rows with one numeric column moved so that, scaled, it lies on a split threshold or
    a few float32/float64 steps beside it: where a float32 comparison and a float64 one differ."""
    preprocess, model = pipeline.steps[0][1], pipeline.steps[-1][1]
    scaler = preprocess.named_transformers_["numeric"].named_steps["scale"]
    names = list(preprocess.get_feature_names_out())
    splits = [(c, t) for c, t in _split_thresholds(model) if names[c] in schema.numeric]
    rng = np.random.default_rng(0)
    rows = []
    for index in rng.choice(len(splits), size=min(40, len(splits)), replace=False):
        column, threshold = splits[index]
        j = schema.numeric.index(names[column])
        single = np.float32(threshold)
        values = {
            threshold,
            float(np.nextafter(threshold, np.inf)),
            float(np.nextafter(threshold, -np.inf)),
            float(single),
            float(np.nextafter(single, np.float32(np.inf))),
            float(np.nextafter(single, np.float32(-np.inf))),
            (threshold + float(single)) / 2,
        }
        for value in sorted(values):
            row = frame.iloc[len(rows) % len(frame)].copy()
            row[names[column]] = value * scaler.scale_[j] + scaler.mean_[j]
            rows.append(row)
    return pd.DataFrame(rows).reset_index(drop=True)


@pytest.mark.parametrize("model", TREES)
def test_rows_on_a_split_threshold_go_the_same_way_as_in_sklearn(
    model: str, dataset: Any, small_train: Callable[..., TrainParams]
) -> None:
    # Fails if the forests lose their float32 cast (0.5 probability off on example.csv) or
    # HistGradientBoosting its float64 thresholds (0.3 off): both were real faults. XGBoost
    # decides in float32 (its DMatrix), LightGBM in float64.
    split, schema = dataset
    pipeline = _trained(dataset, small_train(model))
    rows = _rows_on_thresholds(pipeline, split.test, schema)
    assert len(rows) > 100
    parity = compare(pipeline, OnnxPredictor(to_onnx(pipeline, schema), schema), rows, schema, 1e-5)
    assert parity["passed"], parity
    assert parity["label_agreement"] == 1.0


def test_the_gate_fails_naming_the_rows_and_the_largest_difference(
    split: Split, schema: FeatureSchema, small_train: Callable[..., TrainParams]
) -> None:
    # The forest's probabilities come out as float32: ~1e-8 off, above a tolerance of 1e-300.
    pipeline = train(split.train, schema, split.preprocessor, small_train()).pipeline
    with pytest.raises(ParityError) as caught:
        export(pipeline, split.test, schema, ExportParams(tolerance=1e-300))
    message = str(caught.value)
    assert f"test split ({len(split.test)} rows)" in message
    assert "largest |probability difference|" in message and "at row" in message
    assert "above export.tolerance=1e-300 (e.g. rows 1, 2" in message


def _unsupported_pipeline(split: Split, schema: FeatureSchema) -> Pipeline:
    """The project's preprocessing with a classifier skl2onnx has no converter for."""
    preprocess = split.preprocessor
    features = preprocess.transform(split.train[schema.names])
    model = LabelSpreading().fit(features, split.train[schema.target])
    return Pipeline([("preprocess", preprocess), ("model", model)])


def test_an_unsupported_estimator_is_named_with_the_fix(
    split: Split, schema: FeatureSchema
) -> None:
    pipeline = _unsupported_pipeline(split, schema)
    with pytest.raises(UnsupportedModelError) as caught:
        export(pipeline, split.test, schema, ExportParams())
    message = str(caught.value)
    assert "cannot export LabelSpreading (step model) to ONNX" in message
    assert "skl2onnx 1.20.0" in message
    assert "train.model" in message and "export.on_unsupported: fallback" in message


def test_fallback_gives_an_empty_graph_and_the_reason(split: Split, schema: FeatureSchema) -> None:
    pipeline = _unsupported_pipeline(split, schema)
    exported = export(pipeline, split.test, schema, ExportParams(on_unsupported="fallback"))
    assert exported.onnx_bytes == b""
    assert exported.parity["converted"] is False
    assert exported.parity["on_unsupported"] == "fallback"
    assert "LabelSpreading" in exported.parity["reason"]
    assert "passed" not in exported.parity  # no parity figures without a graph


def test_an_imputer_for_missing_categories_is_named_with_the_param_to_change(
    raw_frame: pd.DataFrame, small_train: Callable[..., TrainParams]
) -> None:
    raw_frame.loc[::15, "cat_0"] = None
    result = validate(raw_frame, "target", ValidateParams(missing="impute"))
    assert result.frame is not None and result.schema is not None
    split = featurize(result.frame, result.schema, FeaturizeParams())
    pipeline = train(split.train, result.schema, split.preprocessor, small_train()).pipeline
    with pytest.raises(UnsupportedModelError) as caught:
        export(pipeline, split.test, result.schema, ExportParams())
    message = str(caught.value)
    assert "SimpleImputer (step preprocess/" in message
    assert "validate.missing" in message


_CONVERT = """
import hashlib, json, sys, joblib
from mlrepo.schema import FeatureSchema
from mlrepo.stages.export import to_onnx
schema = FeatureSchema.model_validate(json.load(open(sys.argv[2])))
print(hashlib.md5(to_onnx(joblib.load(sys.argv[1]), schema)).hexdigest())
"""


@pytest.mark.parametrize(
    "model", ["random_forest", "hist_gradient_boosting", "xgboost", "lightgbm"]
)
def test_the_bytes_are_identical_in_every_process(
    model: str,
    tmp_path: Path,
    split: Split,
    schema: FeatureSchema,
    small_train: Callable[..., TrainParams],
) -> None:
    # dvc.lock records the md5: a uuid graph name or a hash-seeded ordering would change it.
    pipeline = train(split.train, schema, split.preprocessor, small_train(model)).pipeline
    joblib.dump(pipeline, tmp_path / "model.joblib")
    write_json(schema.model_dump(), tmp_path / "schema.json")
    digests = set()
    # Under these two seeds skl2onnx lists the opsets in opposite orders (CPython 3.11).
    for seed in ("0", "1"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(PROJECT / "src")}
        argv = [sys.executable, "-c", _CONVERT, str(tmp_path / "model.joblib")]
        argv.append(str(tmp_path / "schema.json"))
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
        digests.add(done.stdout.strip())
    digests.add(hashlib.md5(to_onnx(pipeline, schema)).hexdigest())
    assert len(digests) == 1


def _stage_files(
    tmp_path: Path, pipeline: Pipeline, split: Split, schema: FeatureSchema
) -> list[str]:
    joblib.dump(pipeline, tmp_path / "model.joblib")
    write_parquet(split.test, tmp_path / "test.parquet")
    write_json(schema.model_dump(), tmp_path / "schema.json")
    return [
        "--model", str(tmp_path / "model.joblib"),
        "--test", str(tmp_path / "test.parquet"),
        "--schema", str(tmp_path / "schema.json"),
        "--onnx", str(tmp_path / "out" / "model.onnx"),
        "--metrics", str(tmp_path / "out" / "export.json"),
    ]  # fmt: skip


def test_main_writes_the_graph_and_the_parity_figures(
    tmp_path: Path,
    split: Split,
    schema: FeatureSchema,
    small_train: Callable[..., TrainParams],
    params_file: Callable[[dict[str, Any]], Path],
) -> None:
    pipeline = train(split.train, schema, split.preprocessor, small_train()).pipeline
    argv = _stage_files(tmp_path, pipeline, split, schema)
    assert run_cli(main, [*argv, "--params", str(params_file({}))]) == 0
    graph = (tmp_path / "out" / "model.onnx").read_bytes()
    assert graph == to_onnx(pipeline, schema)
    metrics = json.loads((tmp_path / "out" / "export.json").read_text())
    assert metrics["converted"] and metrics["passed"] and metrics["onnx_bytes"] == len(graph)
    assert metrics["tolerance"] == 1e-5


def test_main_with_fallback_writes_an_empty_graph_and_without_fails(
    tmp_path: Path,
    split: Split,
    schema: FeatureSchema,
    params_file: Callable[[dict[str, Any]], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = _stage_files(tmp_path, _unsupported_pipeline(split, schema), split, schema)
    error = params_file({"export": {"on_unsupported": "error"}})
    assert run_cli(main, [*argv, "--params", str(error)]) == EXIT_USER_ERROR
    assert "error: cannot export LabelSpreading" in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.onnx").exists()

    fallback = params_file({"export": {"on_unsupported": "fallback"}})
    assert run_cli(main, [*argv, "--params", str(fallback)]) == 0
    assert (tmp_path / "out" / "model.onnx").read_bytes() == b""
    metrics = json.loads((tmp_path / "out" / "export.json").read_text())
    assert metrics["converted"] is False and "LabelSpreading" in metrics["reason"]


def test_exact_ties_may_flip_but_do_not_fail_the_gate() -> None:
    # 50 trees: some test rows get 25 votes each way, exactly 0.5/0.5 in scikit-learn; the
    # graph's float32 sums decide those by the last bit. They are ties, not conversion faults.
    params = GenerateParams()
    frame = generate(params)
    checked = validate(frame, params.target, ValidateParams())
    assert checked.frame is not None and checked.schema is not None
    split = featurize(checked.frame, checked.schema, FeaturizeParams())
    train_params = TrainParams.model_validate({"random_forest": {"n_estimators": 50}})
    pipeline = train(split.train, checked.schema, split.preprocessor, train_params).pipeline
    proba = pipeline.predict_proba(split.test[checked.schema.names])
    assert (np.abs(proba[:, 0] - proba[:, 1]) == 0).any(), "the scenario needs an exact tie"

    exported = export(pipeline, split.test, checked.schema, ExportParams())

    assert exported.parity["passed"]
    assert exported.parity["tied_rows"] >= 1
    assert exported.parity["max_abs_proba_diff"] <= 1e-5


@pytest.mark.parametrize("model", ["xgboost", "lightgbm"])
def test_boosters_export_with_early_stopping_and_many_string_classes(model: str) -> None:
    # Early stopping keeps the trees after the best round in the library's model: the graph
    # must stop where predict_proba does. Labels are strings, the library saw codes 0..3.
    params = GenerateParams(n_samples=2000, n_classes=4, n_informative=6, seed=5)
    frame = generate(params)
    frame[params.target] = frame[params.target].map(dict(enumerate("wxyz")))
    checked = validate(frame, params.target, ValidateParams())
    assert checked.frame is not None and checked.schema is not None
    split = featurize(checked.frame, checked.schema, FeaturizeParams())
    section = {"n_estimators": 300, "early_stopping": True, "n_iter_no_change": 3}
    train_params = TrainParams.model_validate({"model": model, "cv_folds": 2, model: section})
    pipeline = train(split.train, checked.schema, split.preprocessor, train_params).pipeline
    booster = pipeline.named_steps["model"]
    assert 0 < booster.n_iter_ < 300
    assert list(booster.classes_) == ["w", "x", "y", "z"]

    exported = export(pipeline, split.test, checked.schema, ExportParams())

    parity = exported.parity
    assert parity["passed"] and parity["label_agreement"] == 1.0, parity
    assert parity["predict_agreement"] == 1.0
    assert parity["max_abs_proba_diff"] <= 1e-5
    assert parity["estimator"] == {"xgboost": "XGBClassifier", "lightgbm": "LGBMClassifier"}[model]
    assert "onnxmltools" in parity["versions"]
    labels, _ = OnnxPredictor(exported.onnx_bytes, checked.schema).run(split.test)
    assert set(labels.astype(str)) <= {"w", "x", "y", "z"}
