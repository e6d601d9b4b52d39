"""The hyperparameters of each model: the ``train.<model>`` sections of ``params.yaml``.

``train.model`` names one of ``ModelName``; ``mlrepo.models`` builds its estimator from the
section of the same name. A new model gets its section here and its factory there.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mlrepo.params_types import Fraction, PositiveFloat, PositiveInt, Section


class EarlyStopping(Section):
    """Early stopping, named as in scikit-learn's HistGradientBoosting for every booster.

    Hold out ``validation_fraction`` of the rows (stratified, split seeded by ``train.seed``)
    and stop after ``n_iter_no_change`` rounds without a lower loss on them; ``auto`` turns it
    on above 10k rows.
    """

    early_stopping: Literal["auto", True, False] = "auto"
    validation_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    n_iter_no_change: PositiveInt = 10


class RandomForestParams(Section):
    n_estimators: PositiveInt = 100
    max_depth: PositiveInt | None = 10
    min_samples_leaf: PositiveInt = 1
    max_features: Literal["sqrt", "log2"] | Fraction = "sqrt"
    class_weight: Literal["balanced", "balanced_subsample"] | None = None


class GradientBoostingParams(Section):
    n_estimators: PositiveInt = 100
    learning_rate: PositiveFloat = 0.1
    max_depth: PositiveInt = 3
    subsample: Fraction = 1.0


class HistGradientBoostingParams(EarlyStopping):
    max_iter: PositiveInt = 200
    learning_rate: PositiveFloat = 0.1
    max_leaf_nodes: Annotated[int, Field(ge=2)] = 31
    max_depth: PositiveInt | None = None
    l2_regularization: Annotated[float, Field(ge=0)] = 0.0
    class_weight: Literal["balanced"] | None = None


class LogisticRegressionParams(Section):
    C: PositiveFloat = 1.0
    max_iter: PositiveInt = 1000
    class_weight: Literal["balanced"] | None = None


class SvmParams(Section):
    C: PositiveFloat = 1.0
    kernel: Literal["rbf", "linear", "poly", "sigmoid"] = "rbf"
    gamma: Literal["scale", "auto"] | PositiveFloat = "scale"
    class_weight: Literal["balanced"] | None = None


class XGBoostParams(EarlyStopping):
    """XGBoost's scikit-learn classifier; early stopping named as in hist_gradient_boosting."""

    n_estimators: PositiveInt = 200
    learning_rate: PositiveFloat = 0.1
    max_depth: PositiveInt = 6
    min_child_weight: Annotated[float, Field(ge=0)] = 1.0
    subsample: Fraction = 1.0
    colsample_bytree: Fraction = 1.0
    reg_lambda: Annotated[float, Field(ge=0)] = 1.0
    tree_method: Literal["hist", "approx", "exact"] = "hist"
    max_bin: Annotated[int, Field(ge=2)] = 256


class LightGBMParams(EarlyStopping):
    """LightGBM's scikit-learn classifier; early stopping named as in hist_gradient_boosting."""

    n_estimators: PositiveInt = 200
    learning_rate: PositiveFloat = 0.1
    num_leaves: Annotated[int, Field(ge=2, le=131072)] = 31
    max_depth: PositiveInt | None = None  # None: no limit but num_leaves
    min_child_samples: PositiveInt = 20
    min_child_weight: Annotated[float, Field(ge=0)] = 1e-3
    subsample: Fraction = 1.0  # rows bagged afresh every iteration
    colsample_bytree: Fraction = 1.0
    reg_lambda: Annotated[float, Field(ge=0)] = 0.0
    max_bin: Annotated[int, Field(ge=2)] = 255
    class_weight: Literal["balanced"] | None = None


ModelName = Literal[
    "random_forest",
    "gradient_boosting",
    "hist_gradient_boosting",
    "logistic_regression",
    "svm",
    "xgboost",
    "lightgbm",
]
