"""Typed schema of ``params.yaml``: one class per section, parsed once, unknown keys rejected.

Every stage calls :func:`load_params`, so a typo or a bad value (also one given with
``dvc exp run -S``) stops the first stage that runs, before it does any work, with the dotted
key, the value given and what is allowed (worded by :mod:`mlrepo.params_messages`). The
sections of the models' hyperparameters (``train.<model>``) are in :mod:`mlrepo.hyperparams`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlrepo.errors import ParamsError
from mlrepo.hyperparams import (
    GradientBoostingParams,
    HistGradientBoostingParams,
    LightGBMParams,
    LogisticRegressionParams,
    ModelName,
    RandomForestParams,
    SvmParams,
    XGBoostParams,
)
from mlrepo.params_messages import describe
from mlrepo.params_types import PositiveFloat, PositiveInt, Probability, Section


class GenerateParams(Section):
    """Where the dataset comes from: scikit-learn's generator, or the user's own table."""

    source: Literal["synthetic", "file"] = "synthetic"
    path: str = "data/external/example.csv"
    target: str = "target"
    seed: int = 42
    n_samples: Annotated[int, Field(ge=20)] = 1000
    n_features: Annotated[int, Field(ge=2)] = 20
    n_informative: PositiveInt = 10
    n_redundant: Annotated[int, Field(ge=0)] = 4
    n_classes: Annotated[int, Field(ge=2)] = 2
    n_categorical: Annotated[int, Field(ge=0)] = 2
    weights: list[PositiveFloat] | None = None
    label_noise: Probability = 0.01
    class_sep: PositiveFloat = 1.0
    # Rows per Parquet row group of data/raw.parquet: the partitions of train.distributed
    partition_rows: PositiveInt = 1_048_576

    # A field validator (not the model one below) so the message names generate.weights and
    # the list given; n_classes is declared before weights, so it is in info.data.
    @field_validator("weights")
    @classmethod
    def _one_weight_per_class(
        cls, weights: list[float] | None, info: ValidationInfo
    ) -> list[float] | None:
        n_classes = info.data.get("n_classes")
        if weights is not None and n_classes is not None and len(weights) != n_classes:
            raise ValueError(
                f"weights has {len(weights)} entries but n_classes is {n_classes};"
                " give one weight per class or null"
            )
        return weights

    @model_validator(mode="after")
    def _consistent(self) -> GenerateParams:
        if self.n_informative + self.n_redundant > self.n_features:
            raise ValueError(
                f"n_informative ({self.n_informative}) + n_redundant ({self.n_redundant}) must not"
                f" exceed n_features ({self.n_features})"
            )
        if self.n_categorical > self.n_informative:
            raise ValueError(
                f"n_categorical ({self.n_categorical}) must not exceed n_informative"
                f" ({self.n_informative}): each categorical column is derived from an"
                " informative one"
            )
        if self.n_classes * 2 > 2**self.n_informative:
            raise ValueError(
                f"n_classes ({self.n_classes}) needs n_informative >= log2(2 * n_classes)"
            )
        return self


Policy = Literal["error", "warn", "drop"]


class ColumnRule(Section):
    """A declared rule for one column of the input table."""

    dtype: Literal["numeric", "categorical"] | None = None
    min: float | None = None
    max: float | None = None
    allowed: list[str | int | float | bool] | None = None


class ValidateParams(Section):
    """What the validate stage treats as an error, a warning, or allows."""

    missing: Literal["error", "drop", "impute"] = "error"
    duplicates: Policy = "drop"
    constant: Policy = "error"
    leakage: Literal["error", "warn"] = "error"
    min_class_count: PositiveInt = 10
    max_outlier_share: Probability = 0.05
    outlier_z: PositiveFloat = 5.0
    max_imbalance_ratio: PositiveFloat = 10.0
    # The outlier share (a warning) is estimated on a seeded sample above this many rows; every
    # rule that can fail the data (nulls, types, ranges, duplicates...) always sees every row.
    sample_rows: PositiveInt | None = 1_000_000
    seed: int = 42
    drop_columns: list[str] = []
    columns: dict[str, ColumnRule] = {}


class FeaturizeParams(Section):
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2
    seed: int = 42
    scaler: Literal["standard", "robust", "none"] = "standard"
    # train.distributed only: medians and quartiles from a seeded sample of this many train rows
    sample_rows: PositiveInt = 100_000


Scoring = Literal["accuracy", "f1_macro", "f1_weighted", "roc_auc", "neg_log_loss"]


class TrainParams(Section):
    model: ModelName = "random_forest"
    seed: int = 42
    cv_folds: Annotated[int, Field(ge=2)] = 5
    # CV (and search) runs on a stratified sample of at most this many rows, seeded by
    # train.seed; the final model is fitted on every row. null = cross-validate on all rows.
    cv_max_rows: PositiveInt | None = 100_000
    # The most cores training uses at once, for every model: -1 all, -2 all but one, N exactly.
    n_jobs: int = -1
    search: Literal["none", "grid", "random"] = "none"
    search_space: dict[str, list[Any]] = {}
    search_iterations: PositiveInt = 10
    scoring: Scoring = "accuracy"
    # xgboost only: the final fit with xgboost.dask on the Dask cluster, reading the split
    # partition by partition (a table larger than one machine's memory); see mlrepo.xgboost_dask.
    distributed: bool = False
    random_forest: RandomForestParams = RandomForestParams()
    gradient_boosting: GradientBoostingParams = GradientBoostingParams()
    hist_gradient_boosting: HistGradientBoostingParams = HistGradientBoostingParams()
    logistic_regression: LogisticRegressionParams = LogisticRegressionParams()
    svm: SvmParams = SvmParams()
    xgboost: XGBoostParams = XGBoostParams()
    lightgbm: LightGBMParams = LightGBMParams()

    # A field validator so the message names train.search_space; model is declared before
    # search_space, so it is in info.data (absent when it was invalid itself).
    @field_validator("search_space")
    @classmethod
    def _space_matches_model(
        cls, space: dict[str, list[Any]], info: ValidationInfo
    ) -> dict[str, list[Any]]:
        model = info.data.get("model")
        if model is None:
            return space
        known = set(type(cls.model_fields[model].default).model_fields)
        for key, values in space.items():
            if key not in known:
                raise ValueError(
                    f"search_space key '{key}' is not a parameter of {model}; "
                    f"allowed: {', '.join(sorted(known))}"
                )
            if not values:
                raise ValueError(f"search_space.{key} is an empty list")
        return space

    @field_validator("n_jobs")
    @classmethod
    def _some_cores(cls, n_jobs: int) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs is 0; give -1 (every core), -2 (all but one) or a count >= 1")
        return n_jobs

    @model_validator(mode="after")
    def _consistent(self) -> TrainParams:
        if self.search != "none" and not self.search_space:
            raise ValueError(f"search is '{self.search}' but search_space is empty")
        if self.distributed and self.model != "xgboost":
            raise ValueError(
                f"distributed is true but model is '{self.model}': only xgboost trains on the"
                " cluster (xgboost.dask); set model: xgboost or distributed: false"
            )
        if self.distributed and self.cv_max_rows is None:
            raise ValueError(
                "distributed is true but cv_max_rows is null: CV would gather every row into"
                " one process; give a row count"
            )
        return self

    def model_params(self) -> Section:
        """The params section of the chosen model."""
        section: Section = getattr(self, self.model)
        return section


class EvaluateParams(Section):
    min_accuracy: Probability = 0.85
    seed: int = 42
    importance_repeats: PositiveInt = 5
    importance_max_rows: PositiveInt = 5000


NumericTest = Literal["ks", "wasserstein", "jensenshannon"]
CategoricalTest = Literal["chi2", "jensenshannon"]
BinaryTest = Literal["z", "chi2", "jensenshannon"]


class DriftTestParams(Section):
    """The drift test per column group and reference size; the defaults are Evidently's.

    A column is ``numeric`` when it is numeric with more than ``min_distinct_numeric`` distinct
    values, ``binary`` when it has at most two, ``categorical`` otherwise; ``small`` when the
    reference has at most ``small_reference_rows`` values in it.
    """

    numeric_small: NumericTest = "ks"
    numeric_large: NumericTest = "wasserstein"
    categorical_small: CategoricalTest = "chi2"
    categorical_large: CategoricalTest = "jensenshannon"
    binary_small: BinaryTest = "z"
    binary_large: BinaryTest = "jensenshannon"


class BatchParams(Section):
    """The demo batches of the ``batches`` stage, both cut from the held-out test split."""

    seed: int = 42
    n_samples: PositiveInt | None = None  # rows per batch; None = the whole test split
    shift_columns: int | list[str] = 10  # the first N numeric features, or their names
    shift: float = 1.0  # mean shift, in standard deviations of the column
    scale: PositiveFloat = 1.0  # spread multiplier of the shifted columns
    new_category_share: Probability = 0.2  # share of each categorical column set to "unseen"

    # Before pydantic's own checks, so a bad value gives one message rather than one per branch
    # of the union.
    @field_validator("shift_columns", mode="before")
    @classmethod
    def _count_or_names(cls, value: Any) -> Any:
        is_count = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        is_names = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not (is_count or is_names):
            raise ValueError("must be a number of columns (>= 0) or a list of column names")
        return value


class MonitorParams(Section):
    """Drift detection: the batch the ``monitor`` stage checks, the tests and their thresholds."""

    current: str = "data/batches/shifted.parquet"
    small_reference_rows: PositiveInt = 1000
    p_value: Annotated[float, Field(gt=0, lt=1)] = 0.05  # p-value tests: drift below it
    distance_threshold: PositiveFloat = 0.1  # distance tests: drift at or above it
    drift_share: Annotated[float, Field(gt=0, le=1)] = 0.5  # dataset drift: share of features
    min_distinct_numeric: Annotated[int, Field(ge=2)] = 5
    # Fewer current rows than this: no verdict (error) or a verdict marked unreliable (warn).
    min_current_rows: PositiveInt = 30
    small_current: Literal["error", "warn"] = "error"
    # Correction of the p-values of the feature tests for testing many columns at once.
    correction: Literal["none", "bonferroni", "benjamini_hochberg"] = "none"
    # Above this many rows, a sample (reference or current) is tested on a seeded random
    # subset of it: at 100k rows a distance is known to about 0.003 std, and predicting the
    # classes of 1M rows costs more than the tests. null: every row.
    max_rows: PositiveInt | None = 100_000
    seed: int = 42  # seeds that subset
    tests: DriftTestParams = DriftTestParams()
    batch: BatchParams = BatchParams()

    @field_validator("current")
    @classmethod
    def _is_a_table(cls, current: str) -> str:
        if not current.lower().endswith((".csv", ".parquet", ".pq")):
            raise ValueError("must name a .csv or .parquet file")
        return current


class ExportParams(Section):
    """How the ONNX export is checked, and what happens when a model cannot be converted."""

    # Largest |probability difference| allowed between ONNX and scikit-learn on the test split.
    # Above 1e-3 a real conversion bug (one flipped split of a 1000-tree forest) would pass.
    tolerance: Annotated[float, Field(gt=0, le=1e-3)] = 1e-5
    # error: fail the stage; fallback: write an empty models/model.onnx, serve scikit-learn.
    on_unsupported: Literal["error", "fallback"] = "error"


class Params(Section):
    generate: GenerateParams = GenerateParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    featurize: FeaturizeParams = FeaturizeParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    export: ExportParams = ExportParams()
    monitor: MonitorParams = MonitorParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def validate_params(self) -> ValidateParams:
        return self.validate_


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping; raise ``ParamsError`` naming every bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = [describe(error, raw, Params) for error in exc.errors()]
        raise ParamsError(
            f"{source} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems)
        ) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found; run from the project root") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return parse_params(raw, str(path))
