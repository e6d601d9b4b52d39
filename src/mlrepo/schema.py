"""The feature schema: learned at validate, checked again by every consumer of the model.

``FeatureSchema`` says which columns the model takes, their kind (numeric or categorical), the
categories seen in training, whether nulls are allowed, and the target's classes. ``check_frame``
is the one implementation of "does this table fit the schema" (built on pandera, reporting every
problem at once); the validate stage, batch prediction and the service all call it.
``surely_fits`` (a frame) and ``surely_fits_record`` (one record's values) are its fast yes,
kept in this module beside it so that the rules and their fast path cannot drift apart; that
is why the module runs to ~390 lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlrepo.problems import MAX_EXAMPLES, Problem

if TYPE_CHECKING:
    import pandera.pandas as pa

Kind = Literal["numeric", "categorical"]


class Feature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Kind
    nullable: bool = False
    categories: list[str] | None = None  # categorical: the values seen in training, sorted
    # numeric: the range observed in training, for reports and forms; never a rule (declared
    # bounds are ``Bounds``, given to ``check_frame`` by the validate stage).
    min: float | None = None
    max: float | None = None


# A numeric column's declared (min, max), either end open: a rule of validate.columns.
Bounds = dict[str, tuple[float | None, float | None]]


class FeatureSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    classes: list[Any]
    features: list[Feature]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]


def infer_kind(series: pd.Series) -> Kind:
    """Numbers (not booleans) are numeric; strings, booleans and categories are categorical."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return "categorical"
    return "numeric" if pd.api.types.is_numeric_dtype(series.dtype) else "categorical"


def coerce(frame: pd.DataFrame, schema: FeatureSchema, *, lenient: bool = False) -> pd.DataFrame:
    """Give every feature its canonical dtype: numeric -> float64, categorical -> str (nulls kept).

    Call it after ``check_frame`` found no problems (the fitted pipeline always sees these
    dtypes); ``lenient`` turns values that are not numbers into NaN instead of raising.
    """
    out = {}
    for feature in schema.features:
        column = frame[feature.name]
        if feature.kind == "numeric" and column.dtype == np.float64:
            out[feature.name] = column  # the common case; to_numeric costs ms per call
        elif feature.kind == "numeric":
            out[feature.name] = pd.to_numeric(
                column, errors="coerce" if lenient else "raise"
            ).astype("float64")
        else:
            out[feature.name] = categorical_as_str(column)
    # copy=False: the columns that are already canonical are shared, not copied (copy-on-write
    # keeps the caller's frame safe).
    return pd.DataFrame(out, index=frame.index, copy=False)


def categorical_as_str(column: pd.Series) -> pd.Series:
    """Categories as Python strings in an object column, nulls as NaN (what OneHotEncoder wants)."""
    mask = column.isna()  # on the source dtype: a bitmap read for Arrow-backed strings
    values = column.astype(object)
    if isinstance(column.dtype, pd.StringDtype) or _only_strings(values):
        # Already strings: only the nulls need normalising (mapping each value is slow at 1M).
        return values.where(~mask, np.nan) if mask.any() else values
    return values.where(mask, values.map(_category_str)).where(~mask, np.nan).astype(object)


def _only_strings(values: pd.Series) -> bool:
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "string"


def _category_str(value: Any) -> str:
    # 1.0 and 1 read from different files must be the same category.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def pandera_schema(
    features: list[Feature],
    *,
    strict: bool,
    check_categories: bool,
    bounds: Bounds | None = None,
) -> pa.DataFrameSchema:
    """The pandera schema for ``features`` (with the declared ``bounds`` of numeric columns);
    ``strict`` rejects columns that are not features."""
    # Imported here: pandera (and the hypothesis it pulls in) costs ~1 s of start-up that the
    # stages which only read a schema (featurize, train, evaluate...) should not pay.
    import pandera.pandas as pa

    bounds = bounds or {}
    columns = {}
    for feature in features:
        checks: list[pa.Check] = []
        if feature.kind == "numeric":
            checks.append(
                pa.Check(
                    lambda s: ~np.isinf(s.astype("float64")),
                    element_wise=False,
                    ignore_na=True,
                    name="finite",
                    error="finite",
                )
            )
            low, high = bounds.get(feature.name, (None, None))
            if low is not None:
                checks.append(pa.Check.greater_than_or_equal_to(low))
            if high is not None:
                checks.append(pa.Check.less_than_or_equal_to(high))
            columns[feature.name] = pa.Column(
                "float64", checks=checks, nullable=feature.nullable, coerce=True
            )
        else:
            if check_categories and feature.categories is not None:
                checks.append(pa.Check.isin(feature.categories))
            columns[feature.name] = pa.Column(
                object, checks=checks, nullable=feature.nullable, coerce=False
            )
    return pa.DataFrameSchema(columns, strict=strict, ordered=False)


_FIXES = {
    "column_in_schema": "remove the column, or list it in validate.drop_columns",
    "column_in_dataframe": "add the column; the model was trained with it",
    "coerce_dtype": "make every value a number (no text) in this column",
    "not_nullable": "fill the missing values",
    "finite": "replace inf/-inf with finite numbers",
    "isin": "use one of the known categories",
    "greater_than_or_equal_to": "correct the values or the declared min (validate.columns)",
    "less_than_or_equal_to": "correct the values or the declared max (validate.columns)",
}

_MESSAGES = {
    "column_in_schema": "unexpected column (not a feature of the schema)",
    "column_in_dataframe": "required column is missing",
    "coerce_dtype": "expected numbers, found values that are not numeric",
    "not_nullable": "missing values (null/NaN) are not allowed",
    "finite": "infinite values are not allowed",
    "isin": "unknown category",
}


def check_frame(
    frame: pd.DataFrame,
    features: list[Feature],
    *,
    strict: bool = True,
    check_categories: bool = True,
    fixes: dict[str, str] | None = None,
    first_row: int = 1,
    bounds: Bounds | None = None,
) -> list[Problem]:
    """Every way ``frame`` breaks the feature rules, all at once (pandera lazy validation).

    ``fixes`` overrides the suggested fix per check name (the validate stage names the params
    that would allow a rule to be broken). Row numbers in messages count data rows from
    ``first_row``: a chunk of a larger file passes the file row of its first row. ``bounds``
    are the declared ranges of numeric columns (``validate.columns``).
    """
    fixes = {**_FIXES, **(fixes or {})}
    # Row numbers count data rows, whatever the caller's index (a slice, labels or repeated
    # values would otherwise give wrong rows or fail).
    prepared = frame.reset_index(drop=True)
    prepared.index = pd.RangeIndex(first_row - 1, first_row - 1 + len(prepared))
    problems: list[Problem] = []
    not_numbers: set[tuple[str, Any]] = set()
    for feature in features:
        if feature.name not in prepared:
            continue
        if feature.kind == "categorical":
            prepared[feature.name] = categorical_as_str(prepared[feature.name])
            continue
        original = prepared[feature.name]
        if original.dtype == np.float64:
            continue  # already numbers: nothing to parse
        if pd.api.types.is_bool_dtype(original.dtype):
            original = original.astype(object)
        numbers = pd.to_numeric(original, errors="coerce")
        failed = numbers.isna() & original.notna()
        if failed.any():
            # pandera's own coercion would also run the range checks on the raw strings.
            not_numbers.update((feature.name, index) for index in original.index[failed])
            problems.append(
                _grouped(
                    "coerce_dtype",
                    feature.name,
                    original[failed],
                    "expected numbers, found values that are not numeric",
                    fixes,
                )
            )
        prepared[feature.name] = numbers.astype("float64")
    from pandera.errors import SchemaErrors

    schema = pandera_schema(
        features, strict=strict, check_categories=check_categories, bounds=bounds
    )
    try:
        # inplace: ``prepared`` is this function's own frame, so pandera need not deep-copy it
        # (a full copy of the table, 0.7 GB at 1M rows).
        schema.validate(prepared, lazy=True, inplace=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        keep = [
            (column, index) not in not_numbers
            for column, index in zip(cases["column"], cases["index"], strict=True)
        ]
        problems.extend(_problems(cases[keep], {f.name: f for f in features}, fixes, bounds))
    return sorted(problems, key=lambda p: (p.column or "", p.check))


def surely_fits(frame: pd.DataFrame, features: list[Feature]) -> bool:
    """True only if ``check_frame(frame, features)`` (strict, categories checked) would find
    nothing: a fast yes, never a verdict of no.

    ``check_frame`` costs tens of milliseconds whatever the size of the frame (pandera's
    per-column overhead), which alone would break the service's latency budget. This is
    whole-block numpy for the numbers and distinct values for the categories; anything unusual
    (another dtype, a non-string category) is left to ``check_frame`` (without bounds), which
    decides and describes.
    """
    if len(frame.columns) != len(features) or set(frame.columns) != {f.name for f in features}:
        return False
    numeric = [f for f in features if f.kind == "numeric"]
    dtypes = frame.dtypes
    if any(dtypes[f.name].kind not in "iuf" for f in numeric):
        return False
    values = frame[[f.name for f in numeric]].to_numpy(dtype="float64") if numeric else None
    return _fits(features, values, lambda f: frame[f.name].unique())


def surely_fits_record(values: Sequence[Any], features: list[Feature]) -> bool:
    """``surely_fits`` of the one-row frame of ``values`` (in ``features`` order, numbers as
    floats or None), without building the frame: the service's single record costs
    microseconds this way, a frame alone hundreds. Same rules, same fast yes."""
    if len(values) != len(features):
        return False
    numbers = [v for v, f in zip(values, features, strict=True) if f.kind == "numeric"]
    # A frame would hold other types in another dtype: surely_fits leaves them to check_frame.
    if any(type(v) is not float and v is not None for v in numbers):
        return False
    block = np.array([numbers], dtype="float64") if numbers else None
    by_name = dict(zip((f.name for f in features), values, strict=True))
    return _fits(features, block, lambda f: (by_name[f.name],))


def _fits(
    features: list[Feature],
    numbers: np.ndarray | None,
    distinct: Callable[[Feature], Iterable[Any]],
) -> bool:
    """The rules ``surely_fits`` checks: finite numbers (``numbers``: the numeric features'
    block, in order), no null where none is allowed, known categories (``distinct``: a
    categorical feature's distinct values)."""
    numeric = [f for f in features if f.kind == "numeric"]
    if numbers is not None:
        if np.isinf(numbers).any():
            return False
        required = [i for i, f in enumerate(numeric) if not f.nullable]
        if required and np.isnan(numbers[:, required]).any():
            return False
    return all(_known_labels(distinct(f), f) for f in features if f.kind == "categorical")


def _known_labels(values: Iterable[Any], feature: Feature) -> bool:
    known = set(feature.categories) if feature.categories is not None else None
    for value in values:
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            if not feature.nullable:
                return False
        # Numbers and booleans are categories only once turned into labels ("1", "True").
        elif not isinstance(value, str) or (known is not None and value not in known):
            return False
    return True


def _grouped(
    check: str, column: str, failures: pd.Series, message: str, fixes: dict[str, str]
) -> Problem:
    rows = [int(i) + 1 for i in failures.index[:MAX_EXAMPLES]]
    examples = sorted({repr(_plain(v)) for v in failures.tolist() if not _is_null(v)})
    detail = f"{len(failures)} row(s), e.g. rows " + ", ".join(map(str, rows))
    if examples and check != "not_nullable":
        detail += "; values " + ", ".join(examples[:MAX_EXAMPLES])
    return Problem(
        check=check,
        column=column,
        message=f"{message}: {detail}",
        fix=fixes.get(check, "correct the values"),
        count=len(failures),
        examples=examples[:MAX_EXAMPLES],
    )


def _problems(
    cases: pd.DataFrame,
    features: dict[str, Feature],
    fixes: dict[str, str],
    bounds: Bounds | None,
) -> list[Problem]:
    problems = []
    cases = cases.copy()
    cases["rule"] = cases["check"].astype(str).map(_rule_name)
    for (column_key, rule_key), group in cases.groupby(["column", "rule"], sort=True, dropna=False):
        rule = str(rule_key)
        if rule in {"column_in_schema", "column_in_dataframe"}:
            for name in sorted({str(v) for v in group["failure_case"]}):
                problems.append(
                    Problem(
                        check=rule, column=name, message=_MESSAGES[rule], fix=fixes[rule], count=1
                    )
                )
            continue
        column = str(column_key)
        feature = features.get(column)
        failures = pd.Series(
            group["failure_case"].tolist(),
            index=[int(i) if not _is_null(i) else -1 for i in group["index"]],
        )
        low, high = (bounds or {}).get(column, (None, None))
        message = _message(rule, feature, low, high)
        problems.append(_grouped(rule, column, failures, message, fixes))
    return problems


def _message(rule: str, feature: Feature | None, low: float | None, high: float | None) -> str:
    if rule == "greater_than_or_equal_to" and low is not None:
        return f"values below the declared min {float(low)}"
    if rule == "less_than_or_equal_to" and high is not None:
        return f"values above the declared max {float(high)}"
    if rule == "isin" and feature is not None and feature.categories is not None:
        known = ", ".join(feature.categories[:10])
        return f"unknown category (known: {known}{', ...' if len(feature.categories) > 10 else ''})"
    return _MESSAGES.get(rule, f"fails {rule}")


def _rule_name(check: str) -> str:
    if check.startswith(("coerce_dtype", "dtype(")):
        return "coerce_dtype"
    if check.startswith("isin"):
        return "isin"
    if check.startswith("greater_than_or_equal_to"):
        return "greater_than_or_equal_to"
    if check.startswith("less_than_or_equal_to"):
        return "less_than_or_equal_to"
    return check


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
