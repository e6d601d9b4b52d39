"""Stage 1, generate: the raw dataset, synthetic or read from the user's own table.

Writes one table: the features and the ``generate.target`` column. With ``source: file`` the
user's table is a dependency of the stage in ``dvc.yaml``, so a changed table re-runs it.
"""

from __future__ import annotations

import argparse
import difflib

import numpy as np
import pandas as pd

from mlrepo.errors import DataError, run_cli
from mlrepo.io import read_chunks, read_table, write_parquet
from mlrepo.logs import setup_logging, timed
from mlrepo.params import GenerateParams, load_params

CATEGORIES = ("a", "b", "c", "d", "e")
# The generate params that make_classification takes under the same name.
SAME_NAMED = ("n_samples", "n_features", "n_informative", "n_redundant", "n_classes", "class_sep")


def synthesize(params: GenerateParams) -> pd.DataFrame:
    """A classification table from ``make_classification``, seeded by ``generate.seed``.

    Columns ``num_00``... are numeric; ``cat_0``... are categorical, each a noisy binning of an
    informative feature so the categorical path carries signal. The target column is
    ``generate.target`` with integer classes.
    """
    from sklearn.datasets import make_classification  # only here: source: file needs no sklearn

    x, y = make_classification(
        **params.model_dump(include=set(SAME_NAMED)),
        weights=_normalized(params.weights),
        flip_y=params.label_noise,
        shuffle=False,  # keeps informative features first, so categoricals derive from them
        random_state=params.seed,
    )
    rng = np.random.default_rng(params.seed)
    # The same draws, in the same order, as building the frame and then shuffling its rows
    # (so the bytes of raw.parquet do not change), but each column is gathered once into the
    # shuffled order: no DataFrame copy of x and no second copy from iloc (4.8 GB at 10M rows).
    binned = []
    for i in range(params.n_categorical):
        noisy = x[:, i] + rng.normal(scale=0.5, size=len(x))
        edges = np.quantile(noisy, np.linspace(0, 1, len(CATEGORIES) + 1)[1:-1])
        binned.append(np.searchsorted(edges, noisy).astype(np.int8))
        del noisy
    # make_classification orders rows by class; shuffle them with the seed.
    order = rng.permutation(len(x))
    numbers = np.empty((x.shape[1], len(x)))  # one contiguous row per column, as pandas stores it
    for j in range(x.shape[1]):
        np.take(x[:, j], order, out=numbers[j])
    del x
    names = [f"num_{i:02d}" for i in range(params.n_features)]
    frame = pd.DataFrame(numbers.T, columns=names, copy=False)
    labels = np.asarray(CATEGORIES, dtype=object)
    for i, codes in enumerate(binned):
        frame[f"cat_{i}"] = labels[codes[order]]
    frame[params.target] = y[order]
    return frame


def _normalized(weights: list[float] | None) -> list[float] | None:
    if weights is None:
        return None
    total = sum(weights)
    return [w / total for w in weights]


def load_source(path: str, target: str) -> pd.DataFrame:
    """The user's table, checked for the one thing generate needs: the target column."""
    frame = read_table(path)
    frame.columns = [str(c) for c in frame.columns]
    _check_target(path, list(frame.columns), target)
    return frame


def _check_target(path: str, columns: list[str], target: str) -> None:
    if target not in columns:
        close = difflib.get_close_matches(target, columns, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DataError(
            f"{path}: target column '{target}' not found (columns: "
            f"{', '.join(columns[:20])}){hint} Fix: set generate.target in params.yaml"
        )


def generate(params: GenerateParams) -> pd.DataFrame:
    """The raw dataset named by ``params`` (``source: synthetic`` or ``source: file``)."""
    if params.source == "file":
        frame = load_source(params.path, params.target)
        source = params.path
    else:
        frame = synthesize(params)
        source = "synthetic"
    # Recorded in the Parquet metadata so later stages can name the user's file in messages.
    frame.attrs = {"source": source}
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="Parquet file to write")
    args = parser.parse_args(argv)
    log = setup_logging("generate")
    everything = load_params(args.params)
    params = everything.generate
    if everything.train.distributed and params.source == "file":
        # The larger-than-memory path: the user's table is copied chunk by chunk.
        with timed("generate"):
            rows = copy_source(params, args.out)
        log.info("%s: %d rows from %s, copied in partitions", args.out, rows, params.path)
        return 0
    with timed("generate"):
        frame = generate(params)
    write_parquet(frame, args.out, params.partition_rows)
    log.info(
        "%s: %d rows x %d columns from %s",
        args.out,
        len(frame),
        frame.shape[1],
        frame.attrs["source"],
    )
    return 0


def copy_source(params: GenerateParams, out: str) -> int:
    """``source: file`` without the table in memory: checked for the target column, then
    rewritten ``generate.partition_rows`` rows at a time (:func:`mlrepo.partitioned.copy_table`)."""
    from mlrepo.partitioned import copy_table

    header = next(read_chunks(params.path, 1, "generate.path in params.yaml"))
    _check_target(params.path, [str(c) for c in header.columns], params.target)
    return copy_table(params.path, out, params.partition_rows, {"source": params.path})


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
