"""Model name -> scikit-learn estimator: the one place to add a model.

Each entry maps a ``train.model`` name to a factory taking that model's params section and the
seed. Adding a model means adding a params class in ``params.py`` and one line here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
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
    "xgboost": lambda p, seed, n_jobs: _xgboost(p, seed, n_jobs),
    "lightgbm": lambda p, seed, n_jobs: _lightgbm(p, seed, n_jobs),
}
# The params that Booster, not the library, handles (named as in HistGradientBoosting).
EARLY_STOPPING_KEYS = ("early_stopping", "validation_fraction", "n_iter_no_change")
# early_stopping "auto" turns on above this many rows, as in HistGradientBoosting.
AUTO_EARLY_STOPPING_ROWS = 10_000


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


class Booster(ClassifierMixin, BaseEstimator):
    """An XGBoost or LightGBM classifier with scikit-learn's contract and early stopping.

    ``estimator`` is fitted on the label codes 0..K-1 (all XGBoost accepts); ``classes_``,
    ``predict`` and the columns of ``predict_proba`` are in the original labels, sorted as in
    any scikit-learn classifier. With early stopping on, a stratified ``validation_fraction`` of
    the rows (split seeded by ``random_state``) is held out as the eval set and boosting stops
    after ``n_iter_no_change`` rounds without a lower log loss on it.
    """

    def __init__(
        self,
        estimator: Any,
        early_stopping: Any = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        random_state: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state

    def fit(self, x: Any, y: Any) -> Booster:
        labels, codes = np.unique(np.asarray(y), return_inverse=True)
        if len(labels) < 2:
            raise ValueError(f"Booster needs at least 2 classes in y, got {len(labels)}")
        model = clone(self.estimator)
        stop = self.early_stopping
        if stop == "auto":
            stop = len(codes) > AUTO_EARLY_STOPPING_ROWS
        if stop:
            x_fit, x_eval, y_fit, y_eval = train_test_split(
                x,
                codes,
                test_size=self.validation_fraction,
                stratify=codes,
                random_state=self.random_state,
            )
            eval_set = [(x_eval, y_eval)]
            if type(model).__module__.startswith("lightgbm"):
                import lightgbm

                stopping = lightgbm.early_stopping(self.n_iter_no_change, verbose=False)
                model.fit(x_fit, y_fit, eval_X=(x_eval,), eval_y=(y_eval,), callbacks=[stopping])
            else:
                model.set_params(early_stopping_rounds=self.n_iter_no_change)
                model.fit(x_fit, y_fit, eval_set=eval_set, verbose=False)
        else:
            model.fit(x, codes)
        if type(model).__module__.startswith("lightgbm"):
            _forget_thread_count(model)
        self.estimator_ = model
        self.classes_ = labels
        self.n_features_in_ = model.n_features_in_
        # Boosting rounds the predictions use (as HistGradientBoosting's n_iter_).
        if not stop:
            self.n_iter_ = int(model.n_estimators)
        elif hasattr(model, "best_iteration_"):  # LightGBM counts from 1
            self.n_iter_ = int(model.best_iteration_)
        else:  # XGBoost counts from 0
            self.n_iter_ = int(model.best_iteration) + 1
        return self

    def set_params(self, **params: Any) -> Booster:
        """Also set ``estimator__*`` on the fitted model, so that :func:`for_prediction`'s
        ``n_jobs=1`` reaches the threads that predict, not only the unfitted template."""
        super().set_params(**params)
        prefix = "estimator__"
        fitted = {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
        if fitted and hasattr(self, "estimator_"):
            self.estimator_.set_params(**fitted)
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        # XGBoost's float32 rows sum to 1 only within float32 rounding; scikit-learn's metrics
        # warn about anything further than float64 rounding from 1.
        proba = np.asarray(self.estimator_.predict_proba(x), dtype=np.float64)
        normalized: np.ndarray = proba / proba.sum(axis=1, keepdims=True)
        return normalized

    def predict(self, x: Any) -> np.ndarray:
        labels: np.ndarray = self.classes_[self.predict_proba(x).argmax(axis=1)]
        return labels


def fitted_with(unfitted: Booster, model: Any, classes: np.ndarray, n_iter: int) -> Booster:
    """``unfitted`` holding ``model``, a library model fitted elsewhere on the label codes of
    ``classes`` (xgboost.dask on a cluster): the same fitted object, with the same attributes,
    as :meth:`Booster.fit` makes, so export, predict and serve take it as any other."""
    booster = clone(unfitted)
    booster.estimator_ = model
    booster.classes_ = np.asarray(classes)
    booster.n_features_in_ = model.n_features_in_
    booster.n_iter_ = n_iter
    return booster


def _forget_thread_count(model: Any) -> None:
    """Drop what the training thread count changes in a fitted LightGBM model but not its trees
    (deterministic, column-wise histograms), so that model.joblib does not depend on the cores
    of the machine that trained it: num_threads in the model text it pickles, and the early
    stopping scores on the validation share, which the threads sum in their own order."""
    import lightgbm

    text = model.booster_.model_to_string()
    text = re.sub(r"^\[num_threads: \d+\]$", "[num_threads: 1]", text, flags=re.MULTILINE)
    booster = lightgbm.Booster(model_str=text)
    booster.best_iteration = model.booster_.best_iteration
    model._Booster = booster
    model._evals_result = {}
    model._best_score = {}


def _booster(model: Any, p: dict[str, Any], seed: int) -> Booster:
    return Booster(model, **{key: p[key] for key in EARLY_STOPPING_KEYS}, random_state=seed)


def _xgboost(p: dict[str, Any], seed: int, n_jobs: int) -> Booster:
    from xgboost import XGBClassifier  # late: no other model pays for importing it

    library = {key: value for key, value in p.items() if key not in EARLY_STOPPING_KEYS}
    return _booster(XGBClassifier(**library, random_state=seed, n_jobs=n_jobs), p, seed)


def _lightgbm(p: dict[str, Any], seed: int, n_jobs: int) -> Booster:
    from lightgbm import LGBMClassifier  # late: no other model pays for importing it

    library = {key: value for key, value in p.items() if key not in EARLY_STOPPING_KEYS}
    library["max_depth"] = -1 if library["max_depth"] is None else library["max_depth"]
    # LightGBM ignores subsample unless rows are re-bagged every subsample_freq iterations.
    library["subsample_freq"] = 1 if library["subsample"] < 1 else 0
    model = LGBMClassifier(
        **library,
        random_state=seed,
        n_jobs=n_jobs,
        # Fixed column-wise histograms: LightGBM otherwise picks row- or column-wise by timing
        # both, so the model could depend on how busy the machine was.
        deterministic=True,
        force_col_wise=True,
        verbose=-1,
    )
    return _booster(model, p, seed)
