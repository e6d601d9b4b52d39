"""Stage 3, featurize: stratified train/test split and the preprocessing fitted on train only.

Reads the validated table and the learned schema; writes the train and test parts and the
preprocessing (scaling, one-hot encoding, imputation where nulls are allowed) fitted on the train
part, which train puts in front of the model. The paths come from ``dvc.yaml``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, RobustScaler, StandardScaler

from mlrepo.errors import DataError, run_cli
from mlrepo.io import (
    Steps,
    read_json,
    read_table,
    release_unused_memory,
    write_parquet,
    write_with,
)
from mlrepo.logs import get_logger, setup_logging, timed
from mlrepo.params import FeaturizeParams, load_params
from mlrepo.schema import FeatureSchema
from mlrepo.stages import parse_paths

SCALERS = {"standard": StandardScaler, "robust": RobustScaler}


@dataclass
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    preprocessor: ColumnTransformer


def build_preprocessor(
    schema: FeatureSchema, scaler: str, categories: list[list[str]] | None = None
) -> ColumnTransformer:
    """Unfitted preprocessing for ``schema``: scale numbers, one-hot categories, impute if allowed.

    Unknown categories at prediction time encode as all zeros rather than failing.
    ``categories``: the one-hot categories of each categorical feature, when known beforehand
    (the partitioned path counts them on every row, then fits on a sample); else learned in fit.
    """
    numeric: list[tuple[str, object]] = []
    categorical: list[tuple[str, object]] = []
    if any(f.nullable for f in schema.features):
        numeric.append(("impute", SimpleImputer(strategy="median")))
        categorical.append(("impute", SimpleImputer(strategy="most_frequent")))
    numeric.append(("scale", SCALERS[scaler]() if scaler in SCALERS else "passthrough"))
    categorical.append(
        (
            "one_hot",
            OneHotEncoder(
                categories="auto" if categories is None else categories,
                handle_unknown="ignore",
                sparse_output=False,
                dtype="float64",
            ),
        )
    )
    transformers = []
    if schema.numeric:
        transformers.append(("numeric", Pipeline(numeric), schema.numeric))
    if schema.categorical:
        transformers.append(("categorical", Pipeline(categorical), schema.categorical))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def featurize(frame: pd.DataFrame, schema: FeatureSchema, params: FeaturizeParams) -> Split:
    """Split ``frame`` (stratified by the target, seeded); fit preprocessing on the train part."""
    labels = frame[schema.target]
    step = Steps("featurize", len(frame))
    step(f"splitting {len(frame):,} rows")
    train_rows, test_rows = split_rows(labels, params)
    train = frame.take(train_rows).reset_index(drop=True)
    test = frame.take(test_rows).reset_index(drop=True)
    # The caller's reference aside, the full table is no longer needed while the fit runs.
    del frame, labels
    release_unused_memory()
    preprocessor = build_preprocessor(schema, params.scaler)
    step(f"fitting the preprocessing on {len(train):,} rows")
    preprocessor.fit(train[schema.names], train[schema.target])
    return Split(train=train, test=test, preprocessor=preprocessor)


def split_rows(labels: pd.Series, params: FeaturizeParams) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the train and test rows: stratified by ``labels``, seeded."""
    check_split(labels.value_counts(), params)
    # Split row positions, not the frame: the same rows as splitting the frame itself, and each
    # part is then gathered once.
    train_rows, test_rows = train_test_split(
        np.arange(len(labels)),
        test_size=params.test_size,
        stratify=labels,
        random_state=params.seed,
    )
    return train_rows, test_rows


def check_split(counts: pd.Series, params: FeaturizeParams) -> None:
    """A stratified split of a table with these class ``counts`` can give each part every class."""
    if counts.min() < 2:
        rare = ", ".join(repr(label) for label in counts[counts < 2].index.tolist())
        raise DataError(
            f"class(es) {rare} have a single row; a stratified split needs at least two rows per"
            " class. Fix: add rows for them, or raise validate.min_class_count to reject them"
        )
    n_rows = int(counts.sum())
    n_test = math.ceil(n_rows * params.test_size)  # how train_test_split rounds
    n_classes = len(counts)
    if n_test < n_classes or n_rows - n_test < n_classes:
        raise DataError(
            f"featurize.test_size={params.test_size} leaves {n_test} test row(s) of {n_rows}"
            f" for {n_classes} classes; each part needs at least one row per class. Fix: choose"
            " a test_size between 0.1 and 0.5, or use more data"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_paths(__doc__, ["data", "schema", "train", "test", "preprocessor"], argv)
    log = setup_logging("featurize")
    params = load_params(args.params)
    schema = FeatureSchema.model_validate(read_json(args.schema))
    if params.train.distributed:
        return _featurize_partitioned(args, schema, params.featurize)
    with timed("read and featurize"):
        # Not kept in a variable here, so featurize can free the table once it is split.
        split = featurize(read_table(args.data), schema, params.featurize)
    write_parquet(split.train, args.train)
    write_parquet(split.test, args.test)
    write_with(args.preprocessor, lambda tmp: joblib.dump(split.preprocessor, tmp))
    log.info(
        "train %d rows, test %d rows, scaler %s",
        len(split.train),
        len(split.test),
        params.featurize.scaler,
    )
    return 0


def _featurize_partitioned(
    args: argparse.Namespace, schema: FeatureSchema, params: FeaturizeParams
) -> int:
    """train.distributed: the split written partition by partition and the preprocessing fitted
    from partition statistics, on the Dask cluster if one is set
    (:mod:`mlrepo.partitioned.featurize`)."""
    from mlrepo import cluster
    from mlrepo.partitioned.featurize import featurize as featurize_partitions

    with cluster.connect("featurize's partition tasks"), timed("featurize"):
        written = featurize_partitions(args.data, schema, params, args.train, args.test)
    write_with(args.preprocessor, lambda tmp: joblib.dump(written.preprocessor, tmp))
    sampled = "every train row" if written.sampled is None else f"{written.sampled} train rows"
    get_logger().info(
        "train %d rows, test %d rows, scaler %s (medians and quartiles from %s)",
        written.train_rows,
        written.test_rows,
        params.scaler,
        sampled,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
