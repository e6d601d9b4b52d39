"""The featurize stage, partition by partition (``train.distributed: true``).

**The split** is the whole-table split: this process reads the label column alone, draws the
same stratified, seeded train/test positions as :func:`mlrepo.stages.featurize.split_rows`, and
each partition's task keeps its own rows of each part. They keep their table order (the
whole-table path writes them in the sampler's order, which only a process holding every row can
gather), one row group per partition, which train's ``xgboost.dask`` fit reads as its partitions.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.preprocessing._data import _handle_zeros_in_scale, _is_constant_feature

from mlrepo import scans
from mlrepo.io import Steps
from mlrepo.params import FeaturizeParams
from mlrepo.partitioned import Partition, RowGroupWriter, arrow_schema, partitions, read, run
from mlrepo.schema import FeatureSchema
from mlrepo.stages.featurize import build_preprocessor, split_rows


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations of each column's non-null values."""

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

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


def split_partition(
    item: tuple[Partition, np.ndarray, np.ndarray | None], schema: FeatureSchema
) -> Part:
    part, is_test, sample = item
    frame = read(part)
    train, test = frame[~is_test], frame[is_test]
    values = train[schema.numeric].to_numpy(dtype="float64", na_value=np.nan)
    return Part(
        train=train.reset_index(drop=True),
        test=test.reset_index(drop=True),
        moments=Moments.of(values),
        counts={name: train[name].value_counts(dropna=True) for name in schema.categorical},
        sample=train if sample is None else train.iloc[sample],
    )


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
    labels = pq.read_table(path, columns=[schema.target]).column(0).to_pandas()
    _, test_rows = split_rows(labels, params)
    del labels
    is_test = np.zeros(n_rows, dtype=bool)
    is_test[test_rows] = True
    n_train = n_rows - len(test_rows)
    sample = scans.sample_positions(n_train, params.sample_rows, params.seed)
    items = list(
        zip(parts, _per_partition(parts, is_test), _samples(parts, is_test, sample), strict=True)
    )
    total: Moments | None = None
    counts: dict[str, list[pd.Series]] = {name: [] for name in schema.categorical}
    samples = []
    columns = arrow_schema(path)
    with RowGroupWriter(train_out, columns) as train, RowGroupWriter(test_out, columns) as test:
        for found in run(split_partition, items, schema):
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
        combined = {
            name: pd.concat(found).groupby(level=0, sort=False).sum()
            for name, found in counts.items()
        }
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


def _per_partition(parts: list[Partition], mask: np.ndarray) -> list[np.ndarray]:
    return [mask[p.start : p.stop] for p in parts]


def _samples(
    parts: list[Partition], is_test: np.ndarray, sample: np.ndarray | None
) -> list[np.ndarray | None]:
    """Each partition's share of ``sample`` (positions among the train rows in table order),
    relative to the partition's own train rows; None everywhere when every row is sampled."""
    if sample is None:
        return [None] * len(parts)
    before = np.cumsum([0, *(int((~is_test[p.start : p.stop]).sum()) for p in parts)])
    bounds = np.searchsorted(sample, before)
    return [
        sample[a:b] - offset
        for a, b, offset in zip(bounds[:-1], bounds[1:], before[:-1], strict=True)
    ]
