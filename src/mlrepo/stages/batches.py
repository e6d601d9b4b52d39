"""Stage 7, batches: two demo batches for the monitor stage, one like the training data and one
shifted, so drift detection can be seen working (and not crying wolf) out of the box.

Both are cut from the held-out test split, the only data known to follow the training
distribution: ``make_classification`` draws new cluster centres and feature transforms for any
other seed or sample count, so freshly generated rows would be a different distribution, and a
user's own table has no generator at all. ``same`` is those rows (the features only, as the
service receives them); ``shifted`` is the same rows with the first ``shift_columns`` numeric
features moved by ``shift`` standard deviations and spread by ``scale``, and a share of every
categorical column replaced by a category never seen in training.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlrepo.errors import DataError, ParamsError, run_cli
from mlrepo.io import read_json, read_table, write_parquet
from mlrepo.logs import setup_logging, timed
from mlrepo.params import BatchParams, load_params
from mlrepo.schema import FeatureSchema

NEW_CATEGORY = "unseen"


@dataclass(frozen=True)
class Batches:
    same: pd.DataFrame
    shifted: pd.DataFrame
    shifted_columns: list[str]


def make_batches(test: pd.DataFrame, schema: FeatureSchema, params: BatchParams) -> Batches:
    """``same``: the test split's features (a seeded sample of ``n_samples`` rows if set);
    ``shifted``: the same rows, perturbed as ``params`` says."""
    same = test[schema.names]
    if params.n_samples is not None:
        if params.n_samples > len(same):
            raise DataError(
                f"monitor.batch.n_samples is {params.n_samples} but the test split has "
                f"{len(same)} rows. Fix: lower it, or raise generate.n_samples or "
                "featurize.test_size"
            )
        same = same.sample(n=params.n_samples, random_state=params.seed)
    same = same.reset_index(drop=True)
    columns = shifted_columns(schema, params)
    shifted = same.copy()
    for name in columns:
        values = shifted[name].astype("float64")
        mean, std = values.mean(), values.std(ddof=0)
        shifted[name] = mean + params.scale * (values - mean) + params.shift * std
    rng = np.random.default_rng(params.seed)
    n_new = round(params.new_category_share * len(shifted))
    for name in schema.categorical:
        rows = np.sort(rng.choice(len(shifted), size=n_new, replace=False))
        column = shifted[name].astype(object)
        column.iloc[rows] = NEW_CATEGORY
        shifted[name] = column
    return Batches(same=same, shifted=shifted, shifted_columns=columns)


def shifted_columns(schema: FeatureSchema, params: BatchParams) -> list[str]:
    """The numeric features ``monitor.batch.shift_columns`` names: the first N (all of them if
    the table has fewer, e.g. a user's own table), or a list of names."""
    numeric = schema.numeric
    if isinstance(params.shift_columns, int):
        return numeric[: params.shift_columns]
    unknown = [name for name in params.shift_columns if name not in numeric]
    if unknown:
        raise ParamsError(
            f"monitor.batch.shift_columns: {', '.join(unknown)} not numeric features; "
            f"allowed: {', '.join(numeric)}"
        )
    return list(params.shift_columns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--test", required=True, help="the held-out test split")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--same", required=True, help="Parquet: a batch like the training data")
    parser.add_argument("--shifted", required=True, help="Parquet: a shifted batch")
    args = parser.parse_args(argv)
    log = setup_logging("batches")
    params = load_params(args.params).monitor.batch
    schema = FeatureSchema.model_validate(read_json(args.schema))
    with timed("batches"):
        batches = make_batches(read_table(args.test), schema, params)
    write_parquet(batches.same, args.same)
    write_parquet(batches.shifted, args.shifted)
    log.info(
        "%d rows each; shifted: %s by %g std (x%g spread), %.0f%% '%s' in %s",
        len(batches.same),
        ", ".join(batches.shifted_columns) or "no numeric column",
        params.shift,
        params.scale,
        100 * params.new_category_share,
        NEW_CATEGORY,
        ", ".join(schema.categorical) or "no categorical column",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
