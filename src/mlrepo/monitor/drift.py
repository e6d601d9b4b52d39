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

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from mlrepo.errors import DataError
from mlrepo.monitor import stattests
from mlrepo.monitor.result import ColumnDrift, DriftResult
from mlrepo.monitor.stattests import Counts
from mlrepo.params import MonitorParams
from mlrepo.prediction import PREDICTION
from mlrepo.schema import Feature, categorical_as_str, check_frame

# The suggested fix when the current data breaks a rule of the reference's features.
DRIFT_FIXES = {
    "column_in_dataframe": "add the column: the reference (the model's training data) has it",
    "coerce_dtype": "make every value a number: the column is numeric in the reference",
}


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
