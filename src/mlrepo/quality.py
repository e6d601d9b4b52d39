"""Dataset-level quality rules of the validate stage (column rules live in ``schema.py``).

Each function takes the table (and the target column) and returns ``Problem`` records; the
validate stage decides from ``validate.*`` params whether each is an error, a warning, or a
reason to drop rows or columns.
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from mlrepo.params import ValidateParams
from mlrepo.schema import MAX_EXAMPLES, Problem

# An object column whose non-null values parse as numbers this often is a numeric column with
# a few bad entries, not a categorical one.
NUMERIC_LOOKING_SHARE = 0.9
# A text column with this share of distinct values is an identifier rather than a category.
IDENTIFIER_SHARE = 0.9


def check_target(frame: pd.DataFrame, target: str, min_class_count: int) -> list[Problem]:
    """The target exists, has no nulls, at least two classes, each with enough rows."""
    if target not in frame.columns:
        close = difflib.get_close_matches(target, [str(c) for c in frame.columns], n=1)
        return [
            Problem(
                check="target_present",
                column=target,
                message="target column not found"
                + (f"; did you mean '{close[0]}'?" if close else ""),
                fix="set generate.target in params.yaml to the label column",
            )
        ]
    problems = []
    labels = frame[target]
    if labels.isna().any():
        problems.append(
            Problem(
                check="target_not_null",
                column=target,
                message=f"{int(labels.isna().sum())} row(s) have no label",
                fix="label every row, or remove unlabelled rows from the source",
                count=int(labels.isna().sum()),
            )
        )
    counts = labels.value_counts()
    if len(counts) < 2:
        problems.append(
            Problem(
                check="target_classes",
                column=target,
                message=f"needs at least 2 classes, found {len(counts)}"
                + (f" ({counts.index.tolist()[0]!r})" if len(counts) else ""),
                fix="use a table with two or more classes in the target column",
            )
        )
    rare = counts[counts < min_class_count]
    if len(counts) >= 2 and len(rare):
        listing = ", ".join(f"{label!r}: {n}" for label, n in rare.items())
        problems.append(
            Problem(
                check="min_class_count",
                column=target,
                message=f"classes with fewer than {min_class_count} rows: {listing}",
                fix="add rows for these classes, merge or drop them in the source, or lower "
                "validate.min_class_count",
                count=len(rare),
            )
        )
    return problems


def numeric_looking(frame: pd.DataFrame, columns: list[str]) -> list[Problem]:
    """Text columns that are numbers except for a few entries: a wrong dtype, not a category."""
    problems = []
    for column in columns:
        values = frame[column].dropna()
        if values.empty or pd.api.types.is_numeric_dtype(values.dtype):
            continue
        if pd.api.types.is_bool_dtype(values.dtype):
            continue
        parsed = pd.to_numeric(values, errors="coerce")
        bad = values[parsed.isna()]
        if len(bad) > 0 and parsed.notna().mean() >= NUMERIC_LOOKING_SHARE:
            examples = sorted({repr(v) for v in bad.tolist()})[:MAX_EXAMPLES]
            rows = ", ".join(str(int(i) + 1) for i in bad.index[:MAX_EXAMPLES])
            problems.append(
                Problem(
                    check="numeric_dtype",
                    column=column,
                    message=f"a numeric column with {len(bad)} non-numeric value(s), e.g. rows "
                    f"{rows}; values {', '.join(examples)}",
                    fix="correct those values in the source (or declare the column with "
                    "validate.columns.<name>.dtype: categorical if it really is a category)",
                    count=len(bad),
                    examples=examples,
                )
            )
    return problems


def identifier_like(frame: pd.DataFrame, categorical: list[str]) -> list[Problem]:
    """Text columns with a different value in (almost) every row: keys, not features."""
    problems = []
    for column in categorical:
        values = frame[column].dropna()
        distinct = values.nunique()
        if distinct > 20 and distinct >= IDENTIFIER_SHARE * len(values):
            problems.append(
                Problem(
                    check="identifier",
                    column=column,
                    severity="warning",
                    message=f"{distinct} distinct values in {len(values)} rows: looks like an "
                    "identifier, which a model can only memorise",
                    fix=f"list it in validate.drop_columns (e.g. drop_columns: [{column}])",
                    count=distinct,
                )
            )
    return problems


def duplicate_rows(frame: pd.DataFrame) -> pd.Series:
    """Mask of rows that repeat an earlier row exactly (features and label)."""
    return frame.duplicated(keep="first")


def constant_columns(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if frame[c].nunique(dropna=True) <= 1]


def leaking_columns(frame: pd.DataFrame, columns: list[str], target: str) -> list[str]:
    """Features that alone predict the target perfectly.

    A feature leaks when every distinct value has a single class and the classes form one run
    each along the sorted values (so thresholds, or a lookup for categories, separate them
    exactly). Identifier-like columns (more than half the values distinct) are not judged as
    lookups, since any unique key maps to the labels trivially.
    """
    leaks = []
    n_classes = frame[target].nunique()
    for column in columns:
        pair = frame[[column, target]].dropna()
        if pair.empty:
            continue
        per_value = pair.groupby(column, sort=True, observed=True)[target].nunique()
        if (per_value > 1).any():
            continue
        if pd.api.types.is_numeric_dtype(pair[column].dtype):
            ordered = pair.sort_values(column, kind="stable")[target].to_numpy()
            runs = 1 + int(np.count_nonzero(ordered[1:] != ordered[:-1]))
            if runs == n_classes:
                leaks.append(column)
        elif len(per_value) <= len(pair) / 2:
            leaks.append(column)
    return leaks


def outlier_share(frame: pd.DataFrame, columns: list[str], z: float) -> dict[str, float]:
    """Share of values more than ``z`` robust standard deviations (median/MAD) from the median."""
    shares = {}
    for column in columns:
        values = frame[column].astype("float64").dropna().to_numpy()
        if values.size == 0:
            continue
        median = np.median(values)
        mad = np.median(np.abs(values - median)) * 1.4826
        if mad == 0:
            continue
        shares[column] = float(np.mean(np.abs(values - median) / mad > z))
    return shares


def imbalance_ratio(frame: pd.DataFrame, target: str) -> float:
    counts = frame[target].value_counts()
    return float(counts.max() / counts.min()) if len(counts) >= 2 else 1.0


def warnings_for_distribution(
    frame: pd.DataFrame, numeric: list[str], target: str, params: ValidateParams
) -> list[Problem]:
    """Outlier share and class imbalance: worth a look, never a reason to stop."""
    problems = []
    for column, share in outlier_share(frame, numeric, params.outlier_z).items():
        if share > params.max_outlier_share:
            problems.append(
                Problem(
                    check="outlier_share",
                    column=column,
                    severity="warning",
                    message=f"{share:.1%} of values lie beyond {params.outlier_z} robust "
                    f"standard deviations (threshold {params.max_outlier_share:.1%})",
                    fix="check the source for unit errors or sentinels such as -999; "
                    "scaler: robust is less sensitive to outliers",
                    count=round(share * len(frame)),
                )
            )
    ratio = imbalance_ratio(frame, target)
    if ratio > params.max_imbalance_ratio:
        problems.append(
            Problem(
                check="class_imbalance",
                column=target,
                severity="warning",
                message=f"largest class is {ratio:.1f}x the smallest "
                f"(threshold {params.max_imbalance_ratio})",
                fix="consider class_weight: balanced in the model's params, and judge by "
                "f1_macro rather than accuracy",
            )
        )
    return problems
