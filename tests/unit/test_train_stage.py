"""train: every model, cross-validation, search, and a byte-stable, single-threaded pipeline."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.pipeline import Pipeline

from mlrepo.errors import DataError, run_cli
from mlrepo.io import dumps_json, file_md5, write_json, write_parquet, write_with
from mlrepo.models import FACTORIES, build_estimator
from mlrepo.params import FeaturizeParams, GenerateParams, TrainParams, ValidateParams
from mlrepo.schema import FeatureSchema
from mlrepo.stages import train as train_stage
from mlrepo.stages.featurize import Split, featurize
from mlrepo.stages.generate import synthesize
from mlrepo.stages.train import candidates, metadata, train
from mlrepo.stages.validate import validate

MakeTrain = Callable[..., TrainParams]


def string_label_split(raw_frame: pd.DataFrame) -> tuple[Split, FeatureSchema]:
    # 'yes' < 'no' in the raw order of appearance would differ from sorted order; the
    # probability columns must follow schema.classes (sorted), whatever the data order.
    raw_frame["target"] = raw_frame["target"].map({0: "yes", 1: "no"})
    result = validate(raw_frame, "target", ValidateParams())
    assert result.frame is not None and result.schema is not None
    return featurize(result.frame, result.schema, FeaturizeParams()), result.schema


@pytest.mark.parametrize("model", sorted(FACTORIES))
def test_every_model_trains_and_predicts_probabilities_in_schema_order(
    raw_frame: pd.DataFrame, small_train: MakeTrain, model: str
) -> None:
    split, schema = string_label_split(raw_frame)
    assert schema.classes == ["no", "yes"]
    trained = train(split.train, schema, split.preprocessor, small_train(model))
    pipeline = trained.pipeline
    assert isinstance(pipeline, Pipeline)
    assert [name for name, _ in pipeline.steps] == ["preprocess", "model"]
    assert list(pipeline.classes_) == schema.classes
    x = split.test[schema.names]
    proba = pipeline.predict_proba(x)
    assert proba.shape == (len(x), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # Column j is the probability of schema.classes[j]: the argmax agrees with predict()
    # (SVC's Platt-scaled probabilities may disagree on a borderline row or two).
    predicted = np.asarray(schema.classes)[proba.argmax(axis=1)]
    assert (predicted == pipeline.predict(x)).mean() > 0.95
    # Better than guessing on this easy synthetic table.
    assert (pipeline.predict(x) == split.test["target"].to_numpy()).mean() > 0.7
    assert trained.cv["accuracy_mean"] > 0.7
    # Saved for single-threaded, bit-for-bit repeatable prediction where the model has n_jobs.
    estimator = pipeline.named_steps["model"]
    if "n_jobs" in estimator.get_params():
        assert estimator.n_jobs == 1


def test_multiclass_probabilities(
    small_generate: Callable[..., GenerateParams], small_train: MakeTrain
) -> None:
    raw = synthesize(small_generate(n_classes=3, weights=[0.5, 0.3, 0.2]))
    result = validate(raw, "target", ValidateParams())
    assert result.frame is not None and result.schema is not None
    split = featurize(result.frame, result.schema, FeaturizeParams())
    trained = train(split.train, result.schema, split.preprocessor, small_train())
    proba = trained.pipeline.predict_proba(split.test[result.schema.names])
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(trained.pipeline.classes_) == [0, 1, 2]


def test_cv_reports_mean_and_std_of_each_metric(
    split: Split, schema: FeatureSchema, small_train: MakeTrain, metric_names: list[str]
) -> None:
    trained = train(split.train, schema, split.preprocessor, small_train())
    assert sorted(trained.cv) == sorted(f"{m}_{s}" for m in metric_names for s in ("mean", "std"))
    for metric in metric_names:
        assert trained.cv[f"{metric}_std"] >= 0
        if metric != "log_loss":
            assert 0.5 < trained.cv[f"{metric}_mean"] <= 1
    assert trained.best_params == {}
    assert trained.candidates == []


def test_grid_search_tries_every_candidate_and_returns_the_best(
    split: Split, schema: FeatureSchema, small_train: MakeTrain
) -> None:
    space = {"max_depth": [1, 6], "n_estimators": [3, 12]}
    params = small_train(search="grid", search_space=space)
    trained = train(split.train, schema, split.preprocessor, params)
    tried = [c["params"] for c in trained.candidates]
    assert sorted(tried, key=str) == sorted(
        [{"max_depth": d, "n_estimators": n} for d in (1, 6) for n in (3, 12)], key=str
    )
    best = max(trained.candidates, key=lambda c: c["cv"]["accuracy_mean"])
    assert trained.best_params == best["params"]
    assert trained.cv == best["cv"]
    model = trained.pipeline.named_steps["model"]
    assert model.max_depth == trained.best_params["max_depth"]
    assert model.n_estimators == trained.best_params["n_estimators"]


def test_random_search_samples_the_declared_space(
    split: Split, schema: FeatureSchema, small_train: MakeTrain
) -> None:
    space = {"C": [0.01, 0.1, 1.0, 10.0], "max_iter": [100, 300]}
    params = small_train(
        "logistic_regression",
        search="random",
        search_space=space,
        search_iterations=3,
        scoring="f1_macro",
    )
    trained = train(split.train, schema, split.preprocessor, params)
    tried = [c["params"] for c in trained.candidates]
    assert len(tried) == 3
    assert len({json.dumps(t, sort_keys=True) for t in tried}) == 3
    for setting in tried:
        assert setting["C"] in space["C"] and setting["max_iter"] in space["max_iter"]
    best = max(trained.candidates, key=lambda c: c["cv"]["f1_macro_mean"])
    assert trained.best_params == best["params"]
    assert tried == candidates(params), "the sample is seeded"


def test_search_by_log_loss_picks_the_lowest(
    split: Split, schema: FeatureSchema, small_train: MakeTrain
) -> None:
    params = small_train(search="grid", search_space={"max_depth": [1, 8]}, scoring="neg_log_loss")
    trained = train(split.train, schema, split.preprocessor, params)
    best = min(trained.candidates, key=lambda c: c["cv"]["log_loss_mean"])
    assert trained.best_params == best["params"]


def test_cv_folds_above_the_smallest_class_is_a_data_error(
    split: Split, schema: FeatureSchema, small_train: MakeTrain
) -> None:
    frame = pd.concat(
        [split.train[split.train["target"] == 0], split.train[split.train["target"] == 1].head(4)]
    )
    with pytest.raises(DataError) as caught:
        train(frame, schema, split.preprocessor, small_train(cv_folds=5))
    message = str(caught.value)
    assert "train.cv_folds=5" in message
    assert "smallest class has 4" in message
    assert "lower train.cv_folds" in message


def test_training_uses_the_configured_threads_prediction_one(
    split: Split, schema: FeatureSchema, small_train: MakeTrain
) -> None:
    params = small_train("random_forest", n_jobs=2)
    assert build_estimator(params).n_jobs == 2
    trained = train(split.train, schema, split.preprocessor, params)
    assert trained.pipeline.named_steps["model"].n_jobs == 1
    assert trained.pipeline.get_params()["model__n_jobs"] == 1


def dumped(pipeline: Pipeline) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    return buffer.getvalue()


def test_joblib_dump_is_byte_identical_for_the_same_seed(
    split: Split, schema: FeatureSchema, small_train: MakeTrain, tmp_path: Path
) -> None:
    params = small_train(n_jobs=2)
    paths = [tmp_path / "one.joblib", tmp_path / "two.joblib"]
    for path in paths:
        trained = train(split.train, schema, split.preprocessor, params)
        write_with(path, lambda tmp, p=trained.pipeline: joblib.dump(p, tmp))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = train(split.train, schema, split.preprocessor, small_train(seed=99))
    assert dumped(other.pipeline) != paths[0].read_bytes()


def test_metadata_is_complete_and_has_no_clock_time(
    split: Split, schema: FeatureSchema, small_train: MakeTrain
) -> None:
    params = small_train(search="grid", search_space={"max_depth": [2, 4]})
    trained = train(split.train, schema, split.preprocessor, params)
    meta = metadata(trained, schema, params, "0123456789abcdef0123456789abcdef", len(split.train))
    assert meta["model"] == "random_forest"
    assert meta["classes"] == [0, 1]
    assert meta["feature_schema"] == schema.model_dump()
    assert FeatureSchema.model_validate(meta["feature_schema"]) == schema
    assert meta["training_data"] == {"md5": "0123456789abcdef0123456789abcdef", "rows": 240}
    assert meta["params"]["max_depth"] == trained.best_params["max_depth"]
    assert meta["params"]["n_estimators"] == 10
    assert meta["seed"] == 3
    assert meta["cv"] == trained.cv
    assert meta["versions"]["scikit-learn"] == sklearn.__version__
    assert set(meta["versions"]) == {"python", "scikit-learn", "numpy", "pandas", "joblib"}
    text = dumps_json(meta)
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}", text), "no dates or times"
    assert not re.search(r"time|date|host|created", text, flags=re.IGNORECASE)
    again = metadata(
        train(split.train, schema, split.preprocessor, params),
        schema,
        params,
        "0123456789abcdef0123456789abcdef",
        len(split.train),
    )
    assert dumps_json(again) == text


def test_main_writes_model_metadata_and_metrics(
    tmp_path: Path,
    params_file: Callable[[dict[str, Any]], Path],
    split: Split,
    schema: FeatureSchema,
) -> None:
    train_path, schema_path = tmp_path / "train.parquet", tmp_path / "schema.json"
    preprocessor_path = tmp_path / "preprocessor.joblib"
    write_parquet(split.train, train_path)
    write_json(schema.model_dump(), schema_path)
    joblib.dump(split.preprocessor, preprocessor_path)
    params = params_file(
        {"train": {"cv_folds": 3, "n_jobs": 2, "random_forest": {"n_estimators": 10}}}
    )

    def run(folder: str) -> dict[str, Path]:
        outs = {
            "model": tmp_path / folder / "model.joblib",
            "meta": tmp_path / folder / "model.json",
            "metrics": tmp_path / folder / "train.json",
        }
        args = ["--params", str(params), "--train", str(train_path)]
        args += ["--schema", str(schema_path), "--preprocessor", str(preprocessor_path)]
        for name, path in outs.items():
            args += [f"--{name}", str(path)]
        assert run_cli(train_stage.main, args) == 0
        return outs

    first, second = run("a"), run("b")
    for name in ("model", "meta", "metrics"):
        assert first[name].read_bytes() == second[name].read_bytes(), name
    meta = json.loads(first["meta"].read_text())
    assert meta["training_data"] == {"md5": file_md5(train_path), "rows": len(split.train)}
    metrics = json.loads(first["metrics"].read_text())
    assert set(metrics) == {"cv", "cv_rows", "train_rows", "n_iter", "best_params", "search"}
    assert metrics["cv_rows"] == metrics["train_rows"] == len(split.train)
    pipeline = joblib.load(first["model"])
    assert pipeline.named_steps["model"].n_jobs == 1
    proba = pipeline.predict_proba(split.test[schema.names])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_cv_runs_on_a_stratified_seeded_sample_and_the_final_fit_on_every_row(
    split: Split, schema: FeatureSchema, small_train: MakeTrain
) -> None:
    params = small_train(cv_max_rows=120)
    x, y = split.train[schema.names], split.train[schema.target]
    sample_x, sample_y = train_stage.cv_sample(x, y, params)
    assert len(sample_x) == 120
    assert sample_x.index.is_monotonic_increasing  # rows keep their order
    shares = y.value_counts(normalize=True)
    assert (sample_y.value_counts(normalize=True) - shares).abs().max() < 0.02
    again_x, _ = train_stage.cv_sample(x, y, params)
    assert again_x.index.equals(sample_x.index)
    trained = train(split.train, schema, split.preprocessor, params)
    assert trained.cv_rows == 120
    full = train(split.train, schema, split.preprocessor, small_train())
    assert full.cv_rows == len(split.train)
    assert trained.cv != full.cv
    # The final model does not depend on how CV was sampled.
    assert dumped(trained.pipeline) == dumped(full.pipeline)


def test_a_sample_too_small_for_the_folds_names_cv_max_rows(
    split: Split, schema: FeatureSchema, small_train: MakeTrain
) -> None:
    with pytest.raises(DataError, match=r"sampled for CV \(train.cv_max_rows\)"):
        train(split.train, schema, split.preprocessor, small_train(cv_max_rows=4))


@pytest.mark.parametrize(
    "model", ["random_forest", "hist_gradient_boosting", "xgboost", "lightgbm"]
)
def test_results_do_not_depend_on_how_many_cores_train_uses(
    split: Split, schema: FeatureSchema, small_train: MakeTrain, model: str
) -> None:
    space = {
        "random_forest": {"max_depth": [2, 4]},
        "hist_gradient_boosting": {"max_iter": [5, 10]},
        "xgboost": {"n_estimators": [5, 10]},
        "lightgbm": {"n_estimators": [5, 10]},
    }
    runs = [
        train(
            split.train,
            schema,
            split.preprocessor,
            small_train(model, n_jobs=n_jobs, search="grid", search_space=space[model]),
        )
        for n_jobs in (1, 2, -1)
    ]
    for other in runs[1:]:
        assert other.candidates == runs[0].candidates
        assert dumped(other.pipeline) == dumped(runs[0].pipeline)


def test_early_stopping_is_seeded_and_its_rounds_are_recorded(
    split: Split, schema: FeatureSchema, small_train: MakeTrain
) -> None:
    section = {"max_iter": 300, "early_stopping": True, "n_iter_no_change": 3}
    params = small_train("hist_gradient_boosting", hist_gradient_boosting=section)
    first = train(split.train, schema, split.preprocessor, params)
    assert first.n_iter is not None and first.n_iter < 300
    assert dumped(first.pipeline) == dumped(
        train(split.train, schema, split.preprocessor, params).pipeline
    )
    other_seed = train(
        split.train,
        schema,
        split.preprocessor,
        small_train("hist_gradient_boosting", hist_gradient_boosting=section, seed=11),
    )
    assert dumped(other_seed.pipeline) != dumped(first.pipeline)
