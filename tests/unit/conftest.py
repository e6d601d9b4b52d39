"""Small, real data shared by the unit tests: a synthetic table, its validation and its split.

Everything is built with the project's own stage cores (no mocks), at a size that keeps the
unit suite fast: 300 rows, 6 numeric and 2 categorical columns.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from mlrepo.logs import LOGGER_NAME
from mlrepo.params import FeaturizeParams, GenerateParams, TrainParams, ValidateParams
from mlrepo.schema import FeatureSchema
from mlrepo.stages.featurize import Split, featurize
from mlrepo.stages.generate import synthesize
from mlrepo.stages.validate import Validation, validate

SMALL = {
    "n_samples": 300,
    "n_features": 6,
    "n_informative": 4,
    "n_redundant": 1,
    "n_categorical": 2,
    "seed": 7,
}
# Few trees / iterations so that every model trains in a fraction of a second.
SMALL_MODELS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 10, "max_depth": 5},
    "gradient_boosting": {"n_estimators": 10},
    "hist_gradient_boosting": {"max_iter": 10},
    "logistic_regression": {"max_iter": 200},
    "svm": {},
    "xgboost": {"n_estimators": 20},
    "lightgbm": {"n_estimators": 20, "min_child_samples": 5},
}


def _small_generate(**overrides: Any) -> GenerateParams:
    return GenerateParams(**{**SMALL, **overrides})


def _small_train(model: str = "random_forest", **overrides: Any) -> TrainParams:
    values: dict[str, Any] = {"model": model, "cv_folds": 3, "n_jobs": 2, "seed": 3}
    values[model] = SMALL_MODELS[model]
    return TrainParams(**{**values, **overrides})


@pytest.fixture
def small_generate() -> Callable[..., GenerateParams]:
    """``small_generate(**overrides)``: GenerateParams for a 300-row table."""
    return _small_generate


@pytest.fixture
def small_train() -> Callable[..., TrainParams]:
    """``small_train(model, **overrides)``: TrainParams with few trees and 3 CV folds."""
    return _small_train


@pytest.fixture
def metric_names() -> list[str]:
    """The metrics train's CV and evaluate both report, as the tests expect them (written out
    here rather than read from the code under test)."""
    return [
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision_weighted",
        "recall_weighted",
        "f1_weighted",
        "roc_auc",
        "log_loss",
    ]


@pytest.fixture
def params_file(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """``params_file(raw)``: a params.yaml in tmp_path holding ``raw`` (the rest defaults)."""

    def write(raw: dict[str, Any]) -> Path:
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def _raw_frame() -> pd.DataFrame:
    return synthesize(_small_generate())


@pytest.fixture
def raw_frame(_raw_frame: pd.DataFrame) -> pd.DataFrame:
    """A clean binary table (num_00..num_05, cat_0, cat_1, target); a fresh copy per test."""
    return _raw_frame.copy()


@pytest.fixture(scope="session")
def _validated(_raw_frame: pd.DataFrame) -> Validation:
    result = validate(_raw_frame.copy(), "target", ValidateParams())
    assert not result.errors, result.errors
    return result


@pytest.fixture
def validated_frame(_validated: Validation) -> pd.DataFrame:
    assert _validated.frame is not None
    return _validated.frame.copy()


@pytest.fixture
def schema(_validated: Validation) -> FeatureSchema:
    assert _validated.schema is not None
    return _validated.schema


@pytest.fixture(scope="session")
def _split(_validated: Validation) -> Split:
    assert _validated.frame is not None and _validated.schema is not None
    return featurize(_validated.frame.copy(), _validated.schema, FeaturizeParams())


@pytest.fixture
def split(_split: Split) -> Split:
    """Train/test parts and a preprocessor fitted on train (frames copied per test)."""
    return Split(
        train=_split.train.copy(),
        test=_split.test.copy(),
        preprocessor=copy.deepcopy(_split.preprocessor),
    )


@pytest.fixture(autouse=True)
def _restore_mlrepo_logger() -> Iterator[None]:
    """Stage ``main()``s attach a stderr handler to the 'mlrepo' logger; drop it after each test
    so a later test's captured stderr is not written through a closed stream."""
    logger = logging.getLogger(LOGGER_NAME)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate
