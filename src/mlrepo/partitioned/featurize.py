"""The featurize stage, partition by partition (``train.distributed: true``).

**The split** is stratified and seeded without any per-row state in this process. A first
pass counts each partition's classes. Each class's test rows are its share of
``ceil(rows * featurize.test_size)`` (largest remainders, as exact as integers allow), spread
over the partitions by a multivariate hypergeometric draw (seeded by ``featurize.seed``): the
counts a uniformly random choice of that many rows of the class would put in each partition.
Each partition's task then picks that many rows of each class at random (seeded by the seed and
the partition's number). So it is a uniformly random stratified split, the same wherever the
tasks run; it is not the same rows as the whole-table path's (scikit-learn's
``train_test_split`` permutes every row index at once, ~100 bytes a row here). The rows keep
their table order, one row group per partition, which train's ``xgboost.dask`` fit reads as
its partitions.

**The preprocessing is fitted from partition statistics.** Each task returns, for its train
rows, the count, mean and sum of squared deviations of every numeric feature (combined here with
Chan et al.'s pairwise update, in partition order) and the counts of every category. So the
scaler's mean and variance, the one-hot categories and the most frequent category (imputation)
are those of every train row. What needs order statistics (the median that imputes a number,
RobustScaler's median and quartiles) comes from a seeded sample of ``featurize.sample_rows``
train rows: the ``ColumnTransformer`` is fitted on that sample with the exact categories given,
then the exact moments and most frequent categories are put in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.preprocessing._data import _handle_zeros_in_scale, _is_constant_feature

from mlrepo import scans
from mlrepo.io import Steps
from mlrepo.params import FeaturizeParams
from mlrepo.partitioned import (
    Partition,
    RowGroupWriter,
    arrow_schema,
    partitions,
    positions_in,
    read,
    run,
    summed_counts,
)
from mlrepo.schema import FeatureSchema
from mlrepo.stages.featurize import build_preprocessor, check_split


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations of each column's non-null values."""

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of_columns(cls, frame: pd.DataFrame, columns: list[str]) -> Moments:
        """The moments of ``columns``, one column at a time (no copy of the block)."""
        parts = [
            cls.of(frame[c].to_numpy(dtype="float64", na_value=np.nan)[:, None]) for c in columns
        ]
        return cls(
            np.concatenate([p.n for p in parts]) if parts else np.zeros(0, dtype=np.int64),
            np.concatenate([p.mean for p in parts]) if parts else np.zeros(0),
            np.concatenate([p.m2 for p in parts]) if parts else np.zeros(0),
        )

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        present = ~np.isnan(values)
        n = present.sum(axis=0)
        total = np.where(present, values, 0.0).sum(axis=0)
        mean = np.divide(total, n, out=np.zeros(values.shape[1]), where=n > 0)
        m2 = np.where(present, (values - mean) ** 2, 0.0).sum(axis=0)
        return cls(n, mean, m2)

    def __add__(self, other: Moments) -> Moments:
        n = self.n + other.n
        delta = other.mean - self.mean
        share = np.divide(other.n, n, out=np.zeros(len(n)), where=n > 0)
        mean = self.mean + delta * share
        m2 = self.m2 + other.m2 + delta**2 * self.n * share
        return Moments(n, mean, m2)

    @property
    def var(self) -> np.ndarray:
        return np.divide(self.m2, self.n, out=np.zeros(len(self.n)), where=self.n > 0)


@dataclass
class Part:
    """One partition's share of the split and what the fit needs of its train rows."""

    train: pd.DataFrame
    test: pd.DataFrame
    moments: Moments  # of the numeric features
    counts: dict[str, pd.Series]  # categorical feature -> value counts
    sample: pd.DataFrame  # the sampled train rows


def label_counts(part: Partition, target: str) -> pd.Series:
    return read(part, [target])[target].value_counts(dropna=True)


def split_partition(
    item: tuple[Partition, np.ndarray, np.ndarray | None],
    schema: FeatureSchema,
    classes: list[Any],
    seed: int,
) -> Part:
    """The partition's train and test rows, ``item``'s quota of test rows of each class (in
    ``classes`` order) chosen at random, and what the fit needs of its train rows."""
    part, quota, sample = item
    frame = read(part)
    codes = pd.Index(classes).get_indexer(frame[schema.target])
    rng = np.random.default_rng([seed, part.index])
    is_test = np.zeros(len(frame), dtype=bool)
    for code, n_test in enumerate(quota):
        if n_test:
            is_test[rng.choice(np.flatnonzero(codes == code), size=n_test, replace=False)] = True
    # One copy of each part (take), indexed in place: a worker holds little beyond its rows.
    train = frame.take(np.flatnonzero(~is_test))
    test = frame.take(np.flatnonzero(is_test))
    del frame
    train.index = pd.RangeIndex(len(train))
    test.index = pd.RangeIndex(len(test))
    return Part(
        train=train,
        test=test,
        moments=Moments.of_columns(train, schema.numeric),
        counts={name: train[name].value_counts(dropna=True) for name in schema.categorical},
        sample=train if sample is None else train.iloc[sample],
    )


def plan_split(counts: list[pd.Series], params: FeaturizeParams) -> tuple[list[Any], np.ndarray]:
    """The classes (sorted) and how many test rows of each each partition gives (partitions x
    classes), from each partition's class ``counts``."""
    classes = sorted(set().union(*(c.index for c in counts)))
    table = np.array([[int(c.get(k, 0)) for k in classes] for c in counts], dtype=np.int64)
    totals = table.sum(axis=0)
    check_split(pd.Series(totals, index=classes), params)
    n_rows = int(totals.sum())
    per_class = _shares(totals, math.ceil(n_rows * params.test_size))
    rng = np.random.default_rng(params.seed)
    spread = [
        rng.multivariate_hypergeometric(table[:, k], per_class[k]) for k in range(len(classes))
    ]
    return classes, np.column_stack(spread)


def _shares(totals: np.ndarray, n: int) -> np.ndarray:
    """``n`` split over classes in proportion to ``totals``: floors, then one more to each of the
    largest remainders (the first class on ties), in integers."""
    scaled = totals * n
    shares = scaled // totals.sum()
    remainders = scaled % totals.sum()
    extra = np.argsort(-remainders, kind="stable")[: n - int(shares.sum())]
    shares[extra] += 1
    return shares


@dataclass
class Written:
    preprocessor: ColumnTransformer
    train_rows: int
    test_rows: int
    sampled: int | None  # train rows the order statistics came from (None: every one)


def featurize(
    path: str | Path,
    schema: FeatureSchema,
    params: FeaturizeParams,
    train_out: str | Path,
    test_out: str | Path,
) -> Written:
    """Split the table at ``path`` into ``train_out`` and ``test_out`` partition by partition;
    the preprocessing fitted on the train part (not yet written: the caller writes it)."""
    parts = partitions(path)
    n_rows = parts[-1].stop
    step = Steps("featurize", n_rows)
    step(f"splitting {n_rows:,} rows ({len(parts)} partition(s))")
    classes, quotas = plan_split(list(run(label_counts, parts, schema.target)), params)
    train_rows = [p.rows - int(q.sum()) for p, q in zip(parts, quotas, strict=True)]
    n_train = sum(train_rows)
    sample = scans.sample_positions(n_train, params.sample_rows, params.seed)
    # Sample positions count train rows; each partition gets its own, relative to its train rows.
    items = list(zip(parts, quotas, positions_in(train_rows, sample), strict=True))
    total: Moments | None = None
    counts: dict[str, list[pd.Series]] = {name: [] for name in schema.categorical}
    samples = []
    columns = arrow_schema(path)
    with RowGroupWriter(train_out, columns) as train, RowGroupWriter(test_out, columns) as test:
        for found in run(split_partition, items, schema, classes, params.seed):
            train.write(found.train)
            test.write(found.test)
            total = found.moments if total is None else total + found.moments
            for name, values in found.counts.items():
                counts[name].append(values)
            samples.append(found.sample)
            del found
        assert total is not None
        fitted_on = pd.concat(samples)
        del samples
        step(f"fitting the preprocessing (order statistics on {len(fitted_on):,} train rows)")
        combined = {name: summed_counts(found) for name, found in counts.items()}
        preprocessor = fit(schema, params, fitted_on, total, combined, n_train)
    return Written(preprocessor, train.rows, test.rows, None if sample is None else len(sample))


def fit(
    schema: FeatureSchema,
    params: FeaturizeParams,
    sample: pd.DataFrame,
    moments: Moments,
    counts: dict[str, pd.Series],
    n_train: int,
) -> ColumnTransformer:
    """The preprocessing fitted on ``sample``, with the categories, most frequent categories
    and scaler moments of all ``n_train`` train rows put in place."""
    categories = [sorted(map(str, counts[name].index)) for name in schema.categorical]
    preprocessor = build_preprocessor(schema, params.scaler, categories)
    preprocessor.fit(sample[schema.names], sample[schema.target])
    if schema.categorical:
        steps = _steps(preprocessor, "categorical")
        if "impute" in steps:
            steps["impute"].statistics_ = np.array(
                [_most_frequent(counts[name]) for name in schema.categorical], dtype=object
            )
    if schema.numeric:
        steps = _steps(preprocessor, "numeric")
        if "impute" in steps:  # nulls become the (sampled) median, which the scaler then sees
            filled = n_train - moments.n
            medians = np.asarray(steps["impute"].statistics_, dtype="float64")
            moments = moments + Moments(filled, medians, np.zeros(len(filled)))
        if isinstance(steps["scale"], StandardScaler):
            _set_moments(steps["scale"], moments)
    return preprocessor


def _steps(preprocessor: ColumnTransformer, name: str) -> dict[str, Any]:
    pipeline = preprocessor.named_transformers_[name]
    assert isinstance(pipeline, Pipeline)
    return dict(pipeline.steps)


def _most_frequent(counts: pd.Series) -> str:
    """SimpleImputer's ``most_frequent``: the most frequent value, the smallest on ties."""
    top = counts.max()
    return str(min(counts.index[counts == top]))


def _set_moments(scaler: StandardScaler, moments: Moments) -> None:
    """The mean, variance and scale ``StandardScaler.fit`` computes on every row, from the
    combined ``moments`` (the same formulas as its ``partial_fit``).

    Copied with ``astype``: the moments were computed from arrays that came back from the
    workers, whose unpickled dtype objects are not numpy's own float64 instance, and pickle
    would write each of them out again instead of referring to the one it already wrote, so
    the file would differ from a local run's.
    """
    scaler.mean_ = moments.mean.astype(np.float64)  # astype: numpy's own dtype instance
    scaler.var_ = moments.var.astype(np.float64)
    n = moments.n.astype(np.int64)
    scaler.n_samples_seen_ = n[0] if n.max() == n.min() else n
    constant = _is_constant_feature(scaler.var_, scaler.mean_, scaler.n_samples_seen_)
    scaler.scale_ = _handle_zeros_in_scale(np.sqrt(scaler.var_), copy=False, constant_mask=constant)
