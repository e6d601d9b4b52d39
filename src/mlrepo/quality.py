"""Dataset-level quality rules of the validate stage (column rules live in ``schema.py``).

Each rule takes the table (and the columns or target it judges) and returns ``Problem`` records
that hold all of the rule: the message, the fix, and the severity the ``validate.*`` params give
it: an error, a warning, or rows or a column to drop. The validate stage runs the rules in order
and applies what they return. The measures behind them (repeated rows, leaks, outlier shares)
are in ``scans.py``.
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from mlrepo import scans
from mlrepo.params import ValidateParams
from mlrepo.problems import MAX_EXAMPLES, Problem, Severity

# An object column whose non-null values parse as numbers this often is a numeric column with
# a few bad entries, not a categorical one.
NUMERIC_LOOKING_SHARE = 0.9
# A text column with this share of distinct values is an identifier rather than a category.
IDENTIFIER_SHARE = 0.9


def _severity(policy: str, drop: Severity = "error") -> Severity:
    """A ``validate.*`` policy as a severity: error, warn (a warning) or drop (``drop``)."""
    if policy == "drop":
        return drop
    return "warning" if policy == "warn" else "error"


def _per_column(
    columns: list[str], check: str, severity: Severity, message: str, fix: str
) -> list[Problem]:
    """The same problem for each of ``columns``."""
    return [
        Problem(check=check, column=c, severity=severity, message=message, fix=fix) for c in columns
    ]


def listed_columns(frame: pd.DataFrame, params: ValidateParams) -> list[Problem]:
    """``validate.drop_columns``: each listed column is dropped; an absent one is a warning."""
    absent = [c for c in params.drop_columns if c not in frame.columns]
    present = sorted(set(params.drop_columns) - set(absent))
    check, fix = "drop_columns", "remove it from validate.drop_columns"
    return [
        *_per_column(
            absent, check, "warning", "listed in validate.drop_columns but not in the table", fix
        ),
        *_per_column(
            present, check, "drop_column", "listed in validate.drop_columns", f"{fix} to keep it"
        ),
    ]


def check_target(frame: pd.DataFrame, target: str, params: ValidateParams) -> list[Problem]:
    """The target exists, has no nulls, at least two classes, each with enough rows (errors)."""
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
    labels = frame[target]
    return label_problems(labels.value_counts(), int(labels.isna().sum()), target, params)


def label_problems(
    counts: pd.Series, n_null: int, target: str, params: ValidateParams
) -> list[Problem]:
    """``check_target`` of a present target column, from its class ``counts`` (largest first)
    and its ``n_null`` rows without a label."""
    problems = []
    if n_null:
        problems.append(
            Problem(
                check="target_not_null",
                column=target,
                message=f"{n_null} row(s) have no label",
                fix="label every row, or remove unlabelled rows from the source",
                count=n_null,
            )
        )
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
    rare = counts[counts < params.min_class_count]
    if len(counts) >= 2 and len(rare):
        listing = ", ".join(f"{label!r}: {n}" for label, n in rare.items())
        problems.append(
            Problem(
                check="min_class_count",
                column=target,
                message=f"classes with fewer than {params.min_class_count} rows: {listing}",
                fix="add rows for these classes, merge or drop them in the source, or lower "
                "validate.min_class_count",
                count=len(rare),
            )
        )
    return problems


def numeric_looking(frame: pd.DataFrame, columns: list[str]) -> list[Problem]:
    """Text columns that are numbers except for a few entries: a wrong dtype, not a category."""
    return numeric_looking_problems({c: scans.non_numbers(frame[c]) for c in columns})


def numeric_looking_problems(found: dict[str, scans.NonNumbers | None]) -> list[Problem]:
    """``numeric_looking`` from what ``scans.non_numbers`` found in each column (of the whole
    table, or summed over its partitions)."""
    problems = []
    for column, stats in found.items():
        if stats is None or stats.values == 0 or stats.bad == 0:
            continue
        if (stats.values - stats.bad) / stats.values >= NUMERIC_LOOKING_SHARE:
            rows = ", ".join(str(row + 1) for row in stats.rows)
            problems.append(
                Problem(
                    check="numeric_dtype",
                    column=column,
                    message=f"a numeric column with {stats.bad} non-numeric value(s), e.g. rows "
                    f"{rows}; values {', '.join(stats.examples)}",
                    fix="correct those values in the source (or declare the column with "
                    "validate.columns.<name>.dtype: categorical if it really is a category)",
                    count=stats.bad,
                    examples=list(stats.examples),
                )
            )
    return problems


def identifier_like(frame: pd.DataFrame, categorical: list[str]) -> list[Problem]:
    """Text columns with a different value in (almost) every row: keys, not features."""
    counts = {}
    for column in categorical:
        values = frame[column].dropna()
        counts[column] = (int(values.nunique()), len(values))
    return identifier_problems(counts)


def identifier_problems(counts: dict[str, tuple[int, int]]) -> list[Problem]:
    """``identifier_like`` from each column's (distinct values, non-null values)."""
    problems = []
    for column, (distinct, n_values) in counts.items():
        if distinct > 20 and distinct >= IDENTIFIER_SHARE * n_values:
            problems.append(
                Problem(
                    check="identifier",
                    column=column,
                    severity="warning",
                    message=f"{distinct} distinct values in {n_values} rows: looks like an "
                    "identifier, which a model can only memorise",
                    fix=f"list it in validate.drop_columns (e.g. drop_columns: [{column}])",
                    count=distinct,
                )
            )
    return problems


def missing_rows(frame: pd.DataFrame, columns: list[str], params: ValidateParams) -> list[Problem]:
    """Under ``validate.missing: drop``, the rows with a null in ``columns``, to drop.

    Otherwise nulls are the column rules' business (an error, or allowed and imputed later).
    """
    if params.missing != "drop":
        return []
    return missing_problems(frame[columns].isna().any(axis=1).to_numpy())


def missing_problems(has_null: np.ndarray) -> list[Problem]:
    """``missing_rows`` from the mask of rows with a null feature value."""
    n_null = int(has_null.sum())
    if not n_null:
        return []
    return [
        Problem(
            check="missing_rows",
            severity="drop_rows",
            message=f"{n_null} row(s) have a missing feature value",
            fix="fill them in the source to keep them",
            count=n_null,
            rows=has_null,
        )
    ]


def duplicate_rows(frame: pd.DataFrame, params: ValidateParams) -> list[Problem]:
    """Rows that repeat an earlier row: dropped, a warning or an error (``validate.duplicates``)."""
    repeats = scans.repeated_rows(frame).to_numpy()
    first = [int(i) for i in frame.index[repeats][:MAX_EXAMPLES]]
    return duplicate_problems(repeats, first, params)


def duplicate_problems(
    repeats: np.ndarray, first_rows: list[int], params: ValidateParams
) -> list[Problem]:
    """``duplicate_rows`` from the mask of repeating rows and the row labels of the first few."""
    n_repeats = int(repeats.sum())
    if not n_repeats:
        return []
    rows = ", ".join(str(i + 1) for i in first_rows)
    return [
        Problem(
            check="duplicate_rows",
            severity=_severity(params.duplicates, "drop_rows"),
            message=f"{n_repeats} row(s) repeat an earlier row exactly, e.g. rows {rows}; "
            "duplicates that straddle the train/test split inflate test scores",
            fix="remove them from the source, or set validate.duplicates: drop",
            count=n_repeats,
            rows=repeats,
        )
    ]


def constant_columns(
    frame: pd.DataFrame, columns: list[str], params: ValidateParams
) -> list[Problem]:
    """Columns with at most one distinct non-null value: dropped, a warning or an error."""
    return constant_problems([c for c in columns if scans.is_constant(frame[c])], params)


def constant_problems(constant: list[str], params: ValidateParams) -> list[Problem]:
    """``constant_columns`` from the columns found constant."""
    return _per_column(
        constant,
        "constant_column",
        _severity(params.constant, "drop_column"),
        "has a single value in every row, so it carries no information",
        "remove it, list it in validate.drop_columns, or set validate.constant: drop",
    )


def leaking_columns(
    frame: pd.DataFrame, columns: list[str], target: str, params: ValidateParams
) -> list[Problem]:
    """Features that alone predict the target perfectly: an error, or a warning (leakage: warn)."""
    return leak_problems(scans.perfect_predictors(frame, columns, target), params)


def leak_problems(leaks: list[str], params: ValidateParams) -> list[Problem]:
    """``leaking_columns`` from the columns found to leak."""
    return _per_column(
        leaks,
        "leakage",
        _severity(params.leakage),
        "alone predicts the target perfectly: it is probably derived from the label",
        "remove it from the source or list it in validate.drop_columns (or set "
        "validate.leakage: warn if it is legitimately that strong)",
    )


def outliers(
    frame: pd.DataFrame, columns: list[str], params: ValidateParams, rows: np.ndarray | None = None
) -> list[Problem]:
    """Numeric columns with many far outliers: worth a look, never a reason to stop (warnings).

    ``rows``: estimate the outlier share on these row positions (a seeded sample).
    """
    shares = scans.outlier_share(frame, columns, params.outlier_z, rows)
    return outlier_problems(shares, len(frame), None if rows is None else len(rows), params)


def outlier_problems(
    shares: dict[str, float], n_rows: int, sampled: int | None, params: ValidateParams
) -> list[Problem]:
    """``outliers`` from each column's outlier share in a table of ``n_rows`` rows, estimated on
    a seeded sample of ``sampled`` rows (None: on every row)."""
    sample = "" if sampled is None else f"; estimated on a seeded sample of {sampled} rows"
    return [
        Problem(
            check="outlier_share",
            column=column,
            severity="warning",
            message=f"{share:.1%} of values lie beyond {params.outlier_z} robust "
            f"standard deviations (threshold {params.max_outlier_share:.1%}){sample}",
            fix="check the source for unit errors or sentinels such as -999; "
            "scaler: robust is less sensitive to outliers",
            count=round(share * n_rows),
        )
        for column, share in shares.items()
        if share > params.max_outlier_share
    ]


def class_imbalance(frame: pd.DataFrame, target: str, params: ValidateParams) -> list[Problem]:
    """A largest class many times the smallest: worth a look, never a reason to stop (a warning)."""
    return imbalance_problems(frame[target].value_counts(), target, params)


def imbalance_problems(counts: pd.Series, target: str, params: ValidateParams) -> list[Problem]:
    """``class_imbalance`` from the class ``counts``."""
    ratio = scans.imbalance_ratio(counts)
    if not ratio > params.max_imbalance_ratio:
        return []
    return [
        Problem(
            check="class_imbalance",
            column=target,
            severity="warning",
            message=f"largest class is {ratio:.1f}x the smallest "
            f"(threshold {params.max_imbalance_ratio})",
            fix="consider class_weight: balanced in the model's params, and judge by "
            "f1_macro rather than accuracy",
        )
    ]
