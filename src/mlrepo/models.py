"""Model name -> scikit-learn estimator: the one place to add a model.

Each entry maps a ``train.model`` name to a factory taking that model's params section and the
seed. Adding a model means adding a params class in ``params.py`` and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from mlrepo import cores
from mlrepo.params import TrainParams

Factory = Callable[[dict[str, Any], int, int], ClassifierMixin]

FACTORIES: dict[str, Factory] = {
    "random_forest": lambda p, seed, n_jobs: RandomForestClassifier(
        **p, random_state=seed, n_jobs=n_jobs
    ),
    "gradient_boosting": lambda p, seed, n_jobs: GradientBoostingClassifier(**p, random_state=seed),
    "hist_gradient_boosting": lambda p, seed, n_jobs: HistGradientBoostingClassifier(
        **p, random_state=seed
    ),
    "logistic_regression": lambda p, seed, n_jobs: LogisticRegression(**p, random_state=seed),
    "svm": lambda p, seed, n_jobs: SVC(**p, probability=True, random_state=seed),
}


def build_estimator(
    params: TrainParams, overrides: dict[str, Any] | None = None, threads: int | None = None
) -> ClassifierMixin:
    """An unfitted classifier for ``params.model`` with its params section (plus ``overrides``).

    ``threads`` is how many threads this one estimator may use (default: all of
    ``train.n_jobs``); :mod:`mlrepo.cores` decides it when several fits share the cores.
    """
    values = {**params.model_params().model_dump(), **(overrides or {})}
    return FACTORIES[params.model](values, params.seed, threads or cores.resolve(params.n_jobs))


def for_prediction(estimator: Any) -> Any:
    """Make predictions single-threaded, hence bit-for-bit repeatable.

    RandomForest sums tree probabilities in thread order when ``n_jobs`` > 1, so the last bit of
    ``predict_proba`` would change from run to run; training keeps all cores (trees are identical).
    """
    params = estimator.get_params()
    updates = {key: 1 for key in params if key == "n_jobs" or key.endswith("__n_jobs")}
    if updates:
        estimator.set_params(**updates)
    return estimator
