"""The XGBoost and LightGBM models: scikit-learn's classifier contract with the original labels,
seeded early stopping, byte-identical fits whatever the thread count, single-threaded prediction,
and libraries imported only by the stages that use them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification

from mlrepo.models import FACTORIES, Booster, build_estimator, for_prediction
from mlrepo.params import TrainParams

PROJECT = Path(__file__).resolve().parents[2]
BOOSTERS = ("xgboost", "lightgbm")


def _data(n: int = 600, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    x, codes = make_classification(
        n, 10, n_informative=6, n_classes=classes, random_state=0, class_sep=1.5
    )
    return x, codes


def _model(name: str, threads: int = 1, seed: int = 3, **section: object) -> Booster:
    params = TrainParams.model_validate({"model": name, "seed": seed, name: section})
    values = params.model_params().model_dump()
    model = FACTORIES[name](values, params.seed, threads)
    assert isinstance(model, Booster)
    return model


def _bytes(model: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("model", BOOSTERS)
@pytest.mark.parametrize(
    "labels",
    [np.array([-3, 7, 100]), np.array(["high", "low", "mid"], dtype=object)],
    ids=["arbitrary-ints", "strings"],
)
def test_original_labels_in_classes_predict_and_probability_columns(
    model: str, labels: np.ndarray
) -> None:
    x, codes = _data()
    y = labels[codes]
    fitted = _model(model, n_estimators=30).fit(x, y)
    assert list(fitted.classes_) == sorted(labels.tolist())
    assert fitted.estimator_.n_classes_ == 3  # the library saw the codes 0..2
    proba = fitted.predict_proba(x)
    assert proba.shape == (len(x), 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    predicted = fitted.predict(x)
    assert set(predicted) <= set(labels.tolist())
    assert (predicted == fitted.classes_[proba.argmax(axis=1)]).all()
    assert (predicted == y).mean() > 0.9
    # An unfitted copy with the same params, as CV and search make them.
    assert clone(fitted).get_params()["estimator__n_estimators"] == 30


@pytest.mark.parametrize("model", BOOSTERS)
def test_binary_labels_and_a_single_class_is_refused(model: str) -> None:
    x, codes = _data(classes=2)
    fitted = _model(model, n_estimators=20).fit(x, np.array(["no", "yes"])[codes])
    assert list(fitted.classes_) == ["no", "yes"]
    assert fitted.predict_proba(x).shape == (len(x), 2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        _model(model).fit(x, np.zeros(len(x), dtype=int))


@pytest.mark.parametrize("model", BOOSTERS)
def test_the_same_fit_gives_the_same_bytes_whatever_the_thread_count(model: str) -> None:
    x, codes = _data(n=3000)
    # Early stopping on: the validation scores the libraries keep are summed by every thread.
    section = {"n_estimators": 40, "subsample": 0.8, "colsample_bytree": 0.8}
    section |= {"early_stopping": True}
    dumps = [
        _bytes(for_prediction(_model(model, threads, **section).fit(x, codes)))
        for threads in (2, 2, 1)
    ]
    assert dumps[0] == dumps[1], "two fits with the same params and data differ"
    assert dumps[0] == dumps[2], "the thread count of training leaks into model.joblib"
    other_seed = _model(model, 2, seed=4, **section).fit(x, codes)
    assert _bytes(for_prediction(other_seed)) != dumps[0]


@pytest.mark.parametrize("model", BOOSTERS)
def test_for_prediction_makes_the_fitted_library_model_single_threaded(model: str) -> None:
    x, codes = _data()
    fitted = _model(model, threads=2, n_estimators=10).fit(x, codes)
    assert fitted.estimator_.n_jobs == 2
    for_prediction(fitted)
    # The fitted model predicts, not the unfitted template that set_params reaches by default.
    assert fitted.estimator_.n_jobs == 1 and fitted.estimator.n_jobs == 1
    if model == "xgboost":
        config = json.loads(fitted.estimator_.get_booster().save_config())
        assert config["learner"]["generic_param"]["nthread"] == "1"


@pytest.mark.parametrize("model", BOOSTERS)
def test_early_stopping_holds_out_a_seeded_share_and_stops(model: str) -> None:
    x, codes = _data(n=2000)
    section = {"n_estimators": 400, "learning_rate": 0.3, "early_stopping": True}
    first = _model(model, **section, n_iter_no_change=3).fit(x, codes)
    assert 0 < first.n_iter_ < 400
    again = _model(model, **section, n_iter_no_change=3).fit(x, codes)
    assert _bytes(for_prediction(again)) == _bytes(for_prediction(first))
    # The held-out rows follow train.seed: another seed, another split, another model.
    other = _model(model, seed=11, **section, n_iter_no_change=3).fit(x, codes)
    assert _bytes(for_prediction(other)) != _bytes(for_prediction(first))


@pytest.mark.parametrize("model", BOOSTERS)
def test_early_stopping_auto_is_off_up_to_ten_thousand_rows(model: str) -> None:
    x, codes = _data(n=1000)
    fitted = _model(model, n_estimators=25).fit(x, codes)
    assert fitted.n_iter_ == 25


def test_build_estimator_passes_the_section_seed_and_threads() -> None:
    params = TrainParams.model_validate(
        {"model": "xgboost", "seed": 9, "xgboost": {"max_depth": 3, "n_iter_no_change": 4}}
    )
    model = build_estimator(params, {"learning_rate": 0.05}, threads=2)
    assert isinstance(model, Booster)
    inner = model.estimator.get_params()
    assert (inner["max_depth"], inner["learning_rate"], inner["n_jobs"]) == (3, 0.05, 2)
    assert (inner["random_state"], model.random_state, model.n_iter_no_change) == (9, 9, 4)
    assert inner["tree_method"] == "hist"
    lightgbm = build_estimator(
        TrainParams.model_validate({"model": "lightgbm", "lightgbm": {"subsample": 0.5}})
    )
    assert isinstance(lightgbm, Booster)
    # LightGBM ignores subsample unless it re-bags; max_depth null is its -1 (no limit).
    inner = lightgbm.estimator.get_params()
    assert (inner["subsample_freq"], inner["max_depth"]) == (1, -1)


def test_other_stages_do_not_import_the_boosting_libraries() -> None:
    # Stage start-up time is measured: only a pipeline that uses them pays for the import.
    code = (
        "import sys\n"
        "import mlrepo.models, mlrepo.prediction.backends, mlrepo.stages.train\n"
        "import mlrepo.stages.export\n"
        "print(sorted(m for m in ('xgboost', 'lightgbm', 'onnxmltools') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT
    )
    assert done.stdout.strip() == "[]"
