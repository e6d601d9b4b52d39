"""Per-column drift and the dataset verdict: the pure core every drift command and stage uses.

``detect_drift(reference, current, features, params)`` tests each feature with the test
``stattests.choose`` picks (Evidently's defaults unless ``params.tests`` says otherwise); the
dataset drifts when at least ``drift_share`` of the features do. Given the predicted classes of
both samples it also tests the predicted class distribution, as one more categorical column
that does not count towards the share.

Two guards keep the verdict honest: a current sample smaller than ``min_current_rows`` gets no
verdict (``small_current: error``) or one marked unreliable (``warn``), and the p-values of the
feature tests can be adjusted for testing many columns at once (``correction``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mlrepo.errors import DataError
from mlrepo.monitor import stattests
from mlrepo.monitor.stattests import Counts, Group, TestName
from mlrepo.params import MonitorParams
from mlrepo.prediction import PREDICTION
from mlrepo.schema import Feature, categorical_as_str, check_frame

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
    # The p-value after the multiple-testing correction (None: not corrected); drift is
    # decided on it when given.
    adjusted: float | None = None
    correction: str = "none"

    @property
    def statistic(self) -> str:
        return stattests.STATISTIC[self.test]

    @property
    def decided_on(self) -> float:
        """The number compared with the threshold: the adjusted p-value, if there is one."""
        return self.score if self.adjusted is None else self.adjusted

    def as_dict(self) -> dict[str, Any]:
        return {
            "adjusted_score": None if self.adjusted is None else _rounded(self.adjusted),
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
        """The test and its outcome, e.g. ``ks p_value 1.2e-09 < 0.05`` or, corrected,
        ``ks p_value 0.004 (Benjamini-Hochberg adjusted 0.09) >= 0.05``."""
        relation = "<" if self.decided_on < self.threshold else ">="
        new = f"; new categories: {', '.join(self.new_categories)}" if self.new_categories else ""
        adjusted = ""
        if self.adjusted is not None:
            name = stattests.CORRECTION_NAME[self.correction]
            adjusted = f" ({name} adjusted {_short(self.adjusted)})"
        return (
            f"{self.test} {self.statistic} {_short(self.score)}{adjusted} {relation} "
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
    correction: str = "none"
    p_value: float = 0.05  # the threshold of the p-value tests
    min_current_rows: int = 1
    # True when the current sample is below min_current_rows and small_current is warn.
    too_few_rows: bool = False

    @property
    def n_p_value_tests(self) -> int:
        return sum(column.statistic == "p_value" for column in self.features)

    @property
    def expected_false_alarms(self) -> float:
        """Features expected to drift by chance alone without correction, if none drifted:
        the number of p-value tests times the threshold."""
        return self.n_p_value_tests * self.p_value

    def multiple_testing(self) -> str:
        """One sentence on the many tests: the correction applied, or the false alarms to
        expect without one."""
        n = self.n_p_value_tests
        if n == 0:
            return "no p-value test (distance tests only): no multiple-testing correction needed"
        if self.correction == "none":
            return (
                f"{n} p-value tests at {self.p_value:g} without correction: about "
                f"{self.expected_false_alarms:.1f} feature(s) drift by chance alone even when "
                "nothing changed (monitor.correction can adjust for it)"
            )
        bound = (
            "the chance of any false alarm"
            if self.correction == "bonferroni"
            else "the expected share of false alarms among the drifted features"
        )
        return (
            f"{n} p-value tests, {stattests.CORRECTION_NAME[self.correction]} adjusted: "
            f"{bound} is at most {self.p_value:g}"
        )

    def small_sample_warning(self) -> str | None:
        if not self.too_few_rows:
            return None
        return (
            f"only {self.current_rows} current row(s), fewer than monitor.min_current_rows "
            f"({self.min_current_rows}): too few to judge drift, this verdict is unreliable"
        )

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
            "too_few_rows": int(self.too_few_rows),
        }

    def as_dict(self) -> dict[str, Any]:
        """The metrics with every column's test: the full result, JSON-ready."""
        return {
            **self.metrics(),
            "correction": self.correction,
            "drift_share": self.drift_share,
            "expected_false_alarms": _rounded(self.expected_false_alarms),
            "min_current_rows": self.min_current_rows,
            "features": {column.column: column.as_dict() for column in self.features},
            "prediction": self.prediction.as_dict() if self.prediction else None,
        }

    def summary(self) -> str:
        """A few lines for a terminal: the verdict, then the drifted columns."""
        warning = self.small_sample_warning()
        lines = [f"WARNING: {warning}"] if warning else []
        lines += [
            f"dataset drift: {'yes' if self.dataset_drift else 'no'} ({self.n_drifted} of "
            f"{len(self.features)} features drifted, {self.share_drifted:.0%}; the dataset "
            f"drifts from {self.drift_share:.0%})",
            f"multiple testing: {self.multiple_testing()}",
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
    relaxed = [f.model_copy(update={"nullable": True, "categories": None}) for f in features]
    doubtful = [f for f in relaxed if f.name not in frame or not _comparable(frame[f.name], f)]
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


def _comparable(column: pd.Series, feature: Feature) -> bool:
    """Whether drift tests can take ``column`` as it is: any categories, or finite numbers in
    a numeric dtype (a looser rule than ``schema.surely_fits``, which checks data to score)."""
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
    source: str = "the current data",
) -> DriftResult:
    """Test every feature of ``current`` against ``reference``; ``predictions`` (reference,
    current) adds the test of the predicted class distribution.

    Both frames must have passed ``check_columns``. Missing values are left out of the tests;
    a feature with no value at all in either frame is a ``DataError`` (nothing to compare), and
    so is a current sample below ``params.min_current_rows`` unless ``small_current`` is warn.
    """
    if not features:
        raise DataError("no features to compare: the reference has no feature columns")
    if len(current) == 0:
        raise DataError(f"{source}: has no rows")
    too_few = len(current) < params.min_current_rows
    if too_few and params.small_current == "error":
        raise DataError(
            f"{source}: {len(current)} row(s), fewer than monitor.min_current_rows "
            f"({params.min_current_rows}): too few to judge drift, so no verdict is given. "
            "Fix: check a larger batch or a wider log window (e.g. --last 7d), or lower "
            "monitor.min_current_rows, or set monitor.small_current: warn for a verdict "
            "marked unreliable"
        )
    tested = [
        column_drift(f.name, f.kind, reference[f.name], current[f.name], params) for f in features
    ]
    tested = corrected(tested, params.correction)
    prediction = None
    if predictions is not None:
        prediction = column_drift(PREDICTION, "categorical", *predictions, params)
    return DriftResult(
        features=tested,
        prediction=prediction,
        drift_share=params.drift_share,
        reference_rows=len(reference),
        current_rows=len(current),
        correction=params.correction,
        p_value=params.p_value,
        min_current_rows=params.min_current_rows,
        too_few_rows=too_few,
    )


def corrected(columns: list[ColumnDrift], method: str) -> list[ColumnDrift]:
    """``columns`` with the p-values of their p-value tests adjusted together by ``method``
    and the drift decided again on them; distance tests are left as they are."""
    if method == "none":
        return columns
    tested = [i for i, column in enumerate(columns) if column.statistic == "p_value"]
    adjusted = stattests.adjust(np.array([columns[i].score for i in tested]), method)
    result = list(columns)
    for i, value in zip(tested, adjusted, strict=True):
        column = columns[i]
        result[i] = replace(
            column,
            adjusted=float(value),
            correction=method,
            drift=stattests.drifted(column.test, float(value), column.threshold),
        )
    return result


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
