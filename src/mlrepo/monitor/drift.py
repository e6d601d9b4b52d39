"""Per-column drift and the dataset verdict: the pure core every drift command and stage uses.

``detect_drift(reference, current, features, params)`` tests each feature with the test
``stattests.choose`` picks (Evidently's defaults unless ``params.tests`` says otherwise); the
dataset drifts when at least ``drift_share`` of the features do. Given the predicted classes of
both samples it also tests the predicted class distribution, as one more categorical column
that does not count towards the share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlrepo.errors import DataError
from mlrepo.monitor import stattests
from mlrepo.monitor.stattests import Counts, Group, TestName
from mlrepo.params import MonitorParams
from mlrepo.schema import Feature, categorical_as_str, check_frame

PREDICTION = "prediction"
# The suggested fix when the current data breaks a rule of the reference's features.
DRIFT_FIXES = {
    "column_in_dataframe": "add the column: the reference (the model's training data) has it",
    "coerce_dtype": "make every value a number: the column is numeric in the reference",
}


@dataclass(frozen=True)
class ColumnDrift:
    """The test of one column: which test, its score against which threshold, and the verdict."""

    column: str
    kind: str  # the schema's kind: numeric | categorical
    group: Group  # how it was tested: numeric | categorical | binary
    test: TestName
    score: float
    threshold: float
    drift: bool
    reference_rows: int  # non-missing values tested
    current_rows: int
    current_missing: int  # missing values in the current data (not tested)
    new_categories: tuple[str, ...] = ()  # categories the reference never had

    @property
    def statistic(self) -> str:
        return stattests.STATISTIC[self.test]

    def as_dict(self) -> dict[str, Any]:
        return {
            "current_missing": self.current_missing,
            "current_rows": self.current_rows,
            "drift": int(self.drift),
            "group": self.group,
            "kind": self.kind,
            "new_categories": list(self.new_categories),
            "reference_rows": self.reference_rows,
            "score": _rounded(self.score),
            "statistic": self.statistic,
            "test": self.test,
            "threshold": self.threshold,
        }

    def evidence(self) -> str:
        """The test and its outcome, e.g. ``ks p_value 1.2e-09 < 0.05``."""
        relation = "<" if self.score < self.threshold else ">="
        new = f"; new categories: {', '.join(self.new_categories)}" if self.new_categories else ""
        return (
            f"{self.test} {self.statistic} {_short(self.score)} {relation} "
            f"{_short(self.threshold)}{new}"
        )

    def describe(self) -> str:
        """One line for people, e.g. ``num_03: drift (ks p_value 1.2e-09 < 0.05)``."""
        return f"{self.column}: {'drift' if self.drift else 'no drift'} ({self.evidence()})"


@dataclass(frozen=True)
class DriftResult:
    """Every feature's test, the prediction test if predictions were given, and the verdict."""

    features: list[ColumnDrift]
    prediction: ColumnDrift | None
    drift_share: float
    reference_rows: int
    current_rows: int

    @property
    def n_drifted(self) -> int:
        return sum(column.drift for column in self.features)

    @property
    def share_drifted(self) -> float:
        return self.n_drifted / len(self.features)

    @property
    def dataset_drift(self) -> bool:
        return self.share_drifted >= self.drift_share

    @property
    def prediction_drift(self) -> bool:
        return self.prediction is not None and self.prediction.drift

    @property
    def drift(self) -> bool:
        """What a scheduler acts on: the dataset drifted, or the predicted classes did."""
        return self.dataset_drift or self.prediction_drift

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [column for column in self.features if column.drift]

    def metrics(self) -> dict[str, Any]:
        """The verdict in numbers (0/1 for yes/no), so `dvc metrics diff` can compare runs."""
        return {
            "dataset_drift": int(self.dataset_drift),
            "drift": int(self.drift),
            "n_drifted": self.n_drifted,
            "n_features": len(self.features),
            "prediction_drift": int(self.prediction_drift),
            "rows": {"current": self.current_rows, "reference": self.reference_rows},
            "share_drifted": _rounded(self.share_drifted),
        }

    def as_dict(self) -> dict[str, Any]:
        """The metrics with every column's test: the full result, JSON-ready."""
        return {
            **self.metrics(),
            "drift_share": self.drift_share,
            "features": {column.column: column.as_dict() for column in self.features},
            "prediction": self.prediction.as_dict() if self.prediction else None,
        }

    def summary(self) -> str:
        """A few lines for a terminal: the verdict, then the drifted columns."""
        lines = [
            f"dataset drift: {'yes' if self.dataset_drift else 'no'} ({self.n_drifted} of "
            f"{len(self.features)} features drifted, {self.share_drifted:.0%}; the dataset "
            f"drifts from {self.drift_share:.0%})"
        ]
        if self.prediction is not None:
            lines.append(
                f"prediction drift: {'yes' if self.prediction.drift else 'no'} "
                f"({self.prediction.evidence()})"
            )
        lines += [f"  {column.describe()}" for column in self.drifted]
        return "\n".join(lines) + "\n"


def check_columns(frame: pd.DataFrame, features: list[Feature], source: str) -> None:
    """Raise a ``DataError`` naming every feature column that is missing from ``frame`` or holds
    values that are not numbers where the reference has numbers (``schema.check_frame``).

    New categories, values outside the training range and missing values are not errors here:
    they are what drift detection measures. Columns that surely fit skip pandera, which is slow
    on millions of rows.
    """
    relaxed = [
        f.model_copy(update={"nullable": True, "min": None, "max": None, "categories": None})
        for f in features
    ]
    doubtful = [f for f in relaxed if f.name not in frame or not _surely_fits(frame[f.name], f)]
    if not doubtful:
        return
    present = [f.name for f in doubtful if f.name in frame]
    problems = check_frame(
        frame[present], doubtful, strict=False, check_categories=False, fixes=DRIFT_FIXES
    )
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise DataError(
            f"{source}: {len(errors)} problem(s) against the reference's features:\n  - "
            + "\n  - ".join(p.render(source) for p in errors)
        )


def _surely_fits(column: pd.Series, feature: Feature) -> bool:
    if feature.kind == "categorical":
        return True
    if column.dtype.kind not in "iuf":
        return False
    return not np.isinf(column.to_numpy(dtype="float64")).any()


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[Feature],
    params: MonitorParams,
    predictions: tuple[pd.Series, pd.Series] | None = None,
) -> DriftResult:
    """Test every feature of ``current`` against ``reference``; ``predictions`` (reference,
    current) adds the test of the predicted class distribution.

    Both frames must have passed ``check_columns``. Missing values are left out of the tests;
    a feature with no value at all in either frame is a ``DataError`` (nothing to compare).
    """
    if not features:
        raise DataError("no features to compare: the reference has no feature columns")
    if len(current) == 0:
        raise DataError("the current data has no rows")
    tested = [
        column_drift(f.name, f.kind, reference[f.name], current[f.name], params) for f in features
    ]
    prediction = None
    if predictions is not None:
        prediction = column_drift(PREDICTION, "categorical", *predictions, params)
    return DriftResult(
        features=tested,
        prediction=prediction,
        drift_share=params.drift_share,
        reference_rows=len(reference),
        current_rows=len(current),
    )


def column_drift(
    name: str, kind: str, reference: pd.Series, current: pd.Series, params: MonitorParams
) -> ColumnDrift:
    """Test one column: numeric columns with many values by their values, others by counts."""
    numeric = kind == "numeric"
    ref = _values(reference, numeric)
    cur = _values(current, numeric)
    for sample, role in ((ref, "reference"), (cur, "current")):
        if len(sample) == 0:
            raise DataError(
                f"column '{name}' has no values in the {role} data (all missing), so its "
                "drift cannot be measured. Fix: check the feed that fills it"
            )
    n_values = _distinct_beyond(ref, cur, params.min_distinct_numeric) if numeric else None
    counts = None
    if not numeric or (n_values is not None and n_values <= params.min_distinct_numeric):
        counts = category_counts(ref, cur)
        n_values = len(counts.labels)
    assert n_values is not None
    group = stattests.group_of(numeric, n_values, params)
    test = stattests.choose(group, len(ref), params)
    if counts is None:
        score = stattests.NUMERIC_TESTS[test](np.asarray(ref), np.asarray(cur))
    else:
        score = stattests.COUNT_TESTS[test](counts)
    limit = stattests.threshold(test, params)
    return ColumnDrift(
        column=name,
        kind=kind,
        group=group,
        test=test,
        score=score,
        threshold=limit,
        drift=stattests.drifted(test, score, limit),
        reference_rows=len(ref),
        current_rows=len(cur),
        current_missing=len(current) - len(cur),
        new_categories=tuple(counts.new) if counts is not None and not numeric else (),
    )


def _values(column: pd.Series, numeric: bool) -> Any:
    """Numeric: the float64 values without NaN; else the non-missing values as a Series."""
    if numeric:
        values = pd.to_numeric(column).to_numpy(dtype="float64")
        return values[~np.isnan(values)]
    return column[column.notna()]


def _distinct_beyond(reference: np.ndarray, current: np.ndarray, limit: int) -> int:
    """The number of distinct values of both samples, exact up to ``limit`` (beyond it, the
    reference's own count, which is a lower bound and enough to decide)."""
    in_reference = len(pd.unique(reference))
    if in_reference > limit:
        return in_reference
    return len(pd.unique(np.concatenate([reference, current])))


def category_counts(reference: Any, current: Any) -> Counts:
    """The counts of each category (each value, for a numeric column) in both samples.

    Labels are compared as ``schema.categorical_as_str`` writes them, so ``1``, ``1.0`` and
    ``"1"`` are one category, whichever file they came from.
    """
    ref = _labelled_counts(pd.Series(reference))
    cur = _labelled_counts(pd.Series(current))
    labels = sorted(set(ref.index) | set(cur.index))
    return Counts(
        labels=labels,
        reference=ref.reindex(labels, fill_value=0).to_numpy(dtype="int64"),
        current=cur.reindex(labels, fill_value=0).to_numpy(dtype="int64"),
    )


def _labelled_counts(values: pd.Series) -> pd.Series:
    # Counting first and labelling the distinct values only: labelling a million values one by
    # one is the slow part.
    counts = values.value_counts(sort=False)
    counts = counts[counts > 0]  # a pandas Categorical also lists its unused categories
    labels = categorical_as_str(pd.Series(counts.index, dtype=object))
    return pd.Series(counts.to_numpy(), index=labels.to_numpy()).groupby(level=0).sum()


def _rounded(value: float) -> float:
    """Six significant digits: byte-stable JSON across platforms, plenty for a test score."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.6g}")


def _short(value: float) -> str:
    return f"{value:.3g}"
