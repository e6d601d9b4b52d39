"""The validate stage, partition by partition (``train.distributed: true``).

The same rules, in the same order, with the same report and schema as
:func:`mlrepo.stages.validate.validate` on the whole table (a test holds them equal); only how
each rule sees the rows differs. Four passes over the partitions:

1. **scan**: the column rules (``check_frame``, with table row numbers), text columns that are
   numbers, nulls under ``missing: drop``, and one hash per remaining row;
2. **repeats**: only where two hashes are equal, those rows are fetched and compared exactly;
3. **profile**, on the rows kept: per-column min/max and category counts (constants, the
   schema, identifiers), per-class ranges and (value, class) pairs (leakage), and the rows of
   the seeded outlier sample;
4. **write**, only if nothing is an error: the kept rows and columns, one row group per
   partition.

What this process holds of every row: a 64-bit hash and whether it is kept (9 bytes a row,
and pandas' hash table over the hashes while it looks for repeats). The outlier share is
computed on the seeded sample of ``validate.sample_rows`` rows, as on the whole table, whose
numbers are gathered here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# check_frame imports pandera on first use; tasks run on several threads at once, and two of
# them importing it together deadlock in the import system. Imported with this module instead
# (on a worker: when the first task is unpickled).
import pandera.pandas  # noqa: F401
import pyarrow as pa

from mlrepo import quality, scans
from mlrepo.errors import ParamsError
from mlrepo.io import Steps
from mlrepo.params import ValidateParams
from mlrepo.partitioned import (
    Partition,
    RowGroupWriter,
    arrow_schema,
    columns_of,
    partitions,
    positions_in,
    read,
    run,
    summed_counts,
)
from mlrepo.problems import MAX_EXAMPLES, Problem, merge_chunks
from mlrepo.schema import Feature, check_frame, coerce
from mlrepo.stages.validate import (
    _FIXES,
    _NO_RULE,
    Validation,
    _declared_features,
    _drop_counters,
    _schema,
    schema_from,
)


@dataclass(frozen=True)
class Columns:
    """What every task needs to read and prepare a partition as the whole-table path does."""

    read: list[str]  # the columns read (the table's, less validate.drop_columns)
    target: str
    features: list[Feature]  # the features present, in table order


def prepared(part: Partition, columns: Columns) -> pd.DataFrame:
    """The partition with every feature in its canonical dtype (values that are not numbers
    become NaN: the scan reports them) and the label last, as the whole-table path has it."""
    return _coerced(read(part, columns.read), columns)


def _coerced(frame: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    labels = frame[columns.target]
    frame = coerce(frame, _schema(columns.target, [], columns.features), lenient=True)
    frame[columns.target] = labels
    return frame


@dataclass
class Scan:
    non_numbers: dict[str, scans.NonNumbers | None]
    problems: list[Problem]  # the column rules' (check_frame), rows numbered in the table
    classes: pd.Series  # label counts
    unlabelled: int
    has_null: np.ndarray | None  # rows with a null feature, under missing: drop
    hashes: np.ndarray  # of the rows without one


def scan(
    part: Partition,
    columns: Columns,
    declared: list[Feature],
    inferred_categorical: list[str],
    bounds: dict[str, tuple[float | None, float | None]],
    params: ValidateParams,
) -> Scan:
    raw = read(part, columns.read)
    non_numbers = {c: scans.non_numbers(raw[c]) for c in inferred_categorical}
    problems = check_frame(
        raw, declared, strict=False, fixes=_FIXES, bounds=bounds, first_row=part.start + 1
    )
    frame = _coerced(raw, columns)
    del raw
    has_null = None
    if params.missing == "drop":
        has_null = frame[[f.name for f in columns.features]].isna().any(axis=1).to_numpy()
    kept = frame if has_null is None else frame[~has_null]
    labels = frame[columns.target]
    return Scan(
        non_numbers,
        problems,
        labels.value_counts(),
        int(labels.isna().sum()),
        has_null,
        scans.value_hashes(kept),
    )


def rows_at(item: tuple[Partition, np.ndarray], columns: Columns) -> pd.DataFrame:
    part, positions = item
    return prepared(part, columns).iloc[positions]


@dataclass
class Profile:
    """What the rules after the row drops need of one partition's kept rows."""

    classes: pd.Series  # label counts
    unlabelled: int
    ranges: pd.DataFrame  # numeric features: min and max
    counts: dict[str, pd.Series]  # categorical features: value counts
    class_ranges: pd.DataFrame  # numeric features: min and max per class
    pairs: dict[str, pd.DataFrame]  # categorical features: distinct (value, class) pairs
    both: dict[str, int]  # categorical features: rows with a value and a class
    sample: dict[str, np.ndarray]  # numeric features: the values of the outlier sample's rows


def profile(item: tuple[Partition, np.ndarray, np.ndarray | None], columns: Columns) -> Profile:
    part, keep, sample = item
    frame = prepared(part, columns)[keep]
    target = columns.target
    numeric = [f.name for f in columns.features if f.kind == "numeric"]
    categorical = [f.name for f in columns.features if f.kind == "categorical"]
    labels = frame[target]
    pairs, both = {}, {}
    for name in categorical:
        known = frame[[name, target]].dropna()
        pairs[name] = known.drop_duplicates()
        both[name] = len(known)
    return Profile(
        classes=labels.value_counts(),
        unlabelled=int(labels.isna().sum()),
        ranges=frame[numeric].agg(["min", "max"]),
        counts={name: frame[name].value_counts(dropna=True) for name in categorical},
        class_ranges=frame[numeric].groupby(labels, observed=True, sort=False).agg(["min", "max"]),
        pairs=pairs,
        both=both,
        sample={
            name: frame[name].to_numpy(dtype="float64", na_value=np.nan)[
                slice(None) if sample is None else sample
            ]
            for name in numeric
        },
    )


def output(item: tuple[Partition, np.ndarray], columns: Columns, keep: list[str]) -> pd.DataFrame:
    part, rows = item
    frame = prepared(part, columns).loc[:, keep]
    return (frame if rows.all() else frame[rows]).reset_index(drop=True)


def validate(
    path: str | Path, out: str | Path, target: str, params: ValidateParams, source: str
) -> Validation:
    """Check the table at ``path`` partition by partition; write the kept rows to ``out`` if
    every rule passed. The result holds the report and the learned schema (no frame)."""
    if params.sample_rows is None:
        raise ParamsError(
            "validate.sample_rows is null, which would gather every row's numbers into one"
            " process for the outlier share; with train.distributed: true give a row count"
            " (the default is 1000000)"
        )
    parts = partitions(path)
    n_rows = parts[-1].stop
    result = Validation(source=source, rows_in=n_rows)
    step = Steps("validate", n_rows)
    table = columns_of(path)
    table.columns = [str(c) for c in table.columns]
    result.dropped["columns"] = []
    table = result.apply(table, quality.listed_columns(table, params))
    if target not in table.columns:
        result.problems += quality.check_target(table, target, params)
        return result

    declared = _declared_features(table, target, params)
    present = [f for f in declared if f.name in table.columns]
    columns = Columns(read=[str(c) for c in table.columns], target=target, features=present)
    inferred_categorical = [
        f.name
        for f in present
        if f.kind == "categorical" and (params.columns.get(f.name) or _NO_RULE).dtype is None
    ]
    bounds = {name: (rule.min, rule.max) for name, rule in params.columns.items()}
    step(f"scanning {len(parts)} partition(s): column rules, types, nulls, row hashes")
    scanned = list(run(scan, parts, columns, declared, inferred_categorical, bounds, params))
    classes = summed_counts([s.classes for s in scanned])
    unlabelled = sum(s.unlabelled for s in scanned)
    target_problems = quality.label_problems(classes, unlabelled, target, params)
    if any(p.check in {"target_present", "target_classes"} for p in target_problems):
        result.problems += target_problems
        return result
    result.dropped |= _drop_counters(params)
    result.problems += quality.numeric_looking_problems(
        {c: _summed(s.non_numbers[c] for s in scanned) for c in inferred_categorical}
    )
    result.problems += merge_chunks([p for s in scanned for p in s.problems])

    keep = np.ones(n_rows, dtype=bool)
    if params.missing == "drop":
        has_null = np.concatenate([s.has_null for s in scanned if s.has_null is not None])
        missing, _ = result.record(quality.missing_problems(has_null))
        keep = keep if missing is None else missing
    hashes = np.concatenate([s.hashes for s in scanned])
    del scanned
    step("duplicate rows")
    repeats = _repeats(parts, columns, keep, hashes)
    first = [int(i) for i in np.flatnonzero(repeats)[:MAX_EXAMPLES]]
    not_repeated, _ = result.record(quality.duplicate_problems(repeats, first, params))
    keep = keep if not_repeated is None else keep & not_repeated

    step("constant columns, leakage, outliers, identifiers")
    n_kept = int(keep.sum())
    sample = scans.sample_positions(n_kept, params.sample_rows, params.seed)
    if sample is not None:
        result.sampled["outlier_share"] = {"rows": len(sample), "of": n_kept, "seed": params.seed}
    found = _profiles(parts, columns, keep, sample)
    _, dropped = result.record(quality.constant_problems(found.constant(present), params))
    features = [f for f in present if f.name not in dropped]
    numeric = [f.name for f in features if f.kind == "numeric"]
    result.problems += quality.label_problems(found.classes, found.unlabelled, target, params)
    leaks = found.leaks([f.name for f in features], numeric, len(found.classes))
    result.problems += quality.leak_problems(leaks, params)
    shares = scans.outlier_share(found.sample, numeric, params.outlier_z)
    del found.sample  # the largest thing held here (validate.sample_rows rows of numbers)
    sampled = None if sample is None else len(sample)
    result.problems += quality.outlier_problems(shares, n_kept, sampled, params)
    result.problems += quality.imbalance_problems(found.classes, target, params)
    mistyped = {p.column for p in result.problems if p.check == "numeric_dtype"}
    result.problems += quality.identifier_problems(
        {
            f.name: (len(found.counts[f.name]), int(found.counts[f.name].sum()))
            for f in features
            if f.kind == "categorical" and f.name not in mistyped
        }
    )
    if result.errors:
        return result

    step("learning the schema")
    result.schema = schema_from(
        target,
        sorted(found.classes.index.tolist()),
        features,
        {
            f.name: set(map(str, found.counts[f.name].index))
            for f in features
            if f.kind != "numeric"
        },
        {f.name: found.range(f.name) for f in features if f.kind == "numeric"},
        nullable=params.missing == "impute",
    )
    step(f"writing {n_kept:,} rows")
    names = [*(f.name for f in features), target]
    types = {f.name: pa.float64() if f.kind == "numeric" else pa.string() for f in features}
    schema = pa.schema([*types.items(), arrow_schema(path).field(target)])
    items = list(zip(parts, _split(parts, keep), strict=True))
    with RowGroupWriter(out, schema) as writer:
        for frame in run(output, items, columns, names):
            writer.write(frame)
    result.rows_out = writer.rows
    return result


def _summed(found: Any) -> scans.NonNumbers | None:
    total = None
    for part in found:
        if part is None:
            return None  # a numeric column: not judged
        total = part if total is None else total + part
    return total


def _split(parts: list[Partition], mask: np.ndarray) -> list[np.ndarray]:
    return [mask[p.start : p.stop] for p in parts]


def _repeats(
    parts: list[Partition], columns: Columns, keep: np.ndarray, hashes: np.ndarray
) -> np.ndarray:
    """Mask of the table's rows that repeat an earlier kept row exactly (``hashes``: of the kept
    rows): rows whose hash is shared are fetched from their partitions and compared value by
    value."""
    repeats = np.zeros(parts[-1].stop, dtype=bool)
    shared = pd.Series(hashes).duplicated(keep=False).to_numpy()
    if not shared.any():
        return repeats
    candidates = np.flatnonzero(keep)[shared]
    local = positions_in([p.rows for p in parts], candidates)
    items = [
        (p, rows) for p, rows in zip(parts, local, strict=True) if rows is not None and len(rows)
    ]
    rows = pd.concat(list(run(rows_at, items, columns)))
    repeats[rows.index[rows.duplicated(keep="first").to_numpy()]] = True
    return repeats


@dataclass
class Profiles:
    """The partitions' profiles, combined."""

    classes: pd.Series
    unlabelled: int
    ranges: pd.DataFrame
    counts: dict[str, pd.Series]
    class_ranges: pd.DataFrame
    pairs: dict[str, pd.DataFrame]
    both: dict[str, int]
    sample: pd.DataFrame

    def range(self, name: str) -> tuple[float, float]:
        low, high = self.ranges[name].to_numpy(dtype="float64")  # rows: min, max
        return float(low), float(high)

    def constant(self, features: list[Feature]) -> list[str]:
        """As ``scans.is_constant``: at most one distinct non-null value."""
        found = []
        for feature in features:
            if feature.kind == "categorical":
                if len(self.counts[feature.name]) <= 1:
                    found.append(feature.name)
                continue
            low, high = self.range(feature.name)
            if np.isnan(low) or low == high:
                found.append(feature.name)
        return found

    def leaks(self, names: list[str], numeric: list[str], n_classes: int) -> list[str]:
        """As ``scans.perfect_predictors`` on the kept rows."""
        found = []
        for name in names:
            if name in numeric:
                if n_classes and scans.ranges_separate(self.class_ranges, name, n_classes):
                    found.append(name)
            elif self.both[name]:
                pairs = self.pairs[name]
                n_values = int(pairs[name].nunique())
                if scans.lookup_separates(n_values, len(pairs), self.both[name]):
                    found.append(name)
        return found


def _profiles(
    parts: list[Partition], columns: Columns, keep: np.ndarray, sample: np.ndarray | None
) -> Profiles:
    kept = _split(parts, keep)
    # Sample positions count kept rows; each partition gets its own, relative to its kept rows.
    samples = positions_in([int(k.sum()) for k in kept], sample)
    items = list(zip(parts, kept, samples, strict=True))
    found = list(run(profile, items, columns))
    categorical = [f.name for f in columns.features if f.kind == "categorical"]
    ranges = pd.concat([p.ranges for p in found])
    return Profiles(
        classes=summed_counts([p.classes for p in found]),
        unlabelled=sum(p.unlabelled for p in found),
        # [["min"]]: a frame however many partitions (["min"] is a Series for one)
        ranges=pd.DataFrame({"min": ranges.loc[["min"]].min(), "max": ranges.loc[["max"]].max()}).T,
        counts={name: summed_counts([p.counts[name] for p in found]) for name in categorical},
        class_ranges=_class_ranges(pd.concat([p.class_ranges for p in found])),
        pairs={
            name: pd.concat([p.pairs[name] for p in found]).drop_duplicates()
            for name in categorical
        },
        both={name: sum(p.both[name] for p in found) for name in categorical},
        sample=_gathered([p.sample for p in found]),
    )


def _gathered(samples: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """The partitions' sampled values as one frame, a column at a time: each partition's array
    is freed once copied, so the sample is held about once, not twice."""
    columns = {}
    for name in list(samples[0]) if samples else []:
        columns[name] = np.concatenate([s.pop(name) for s in samples])
    return pd.DataFrame(columns, copy=False)


def _class_ranges(ranges: pd.DataFrame) -> pd.DataFrame:
    """Per-class (min, max) of every partition combined: the min of the mins, the max of the
    maxes (NaN only where a class has no value at all, as a grouped min over the table)."""
    if ranges.empty:
        return ranges
    grouped = ranges.groupby(level=0, sort=False)
    lows, highs = grouped.min(), grouped.max()
    is_min = np.asarray(ranges.columns.get_level_values(1) == "min")
    return lows.where(np.broadcast_to(is_min, lows.shape), highs)
