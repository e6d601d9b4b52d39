"""featurize partition by partition: the whole-table split, preprocessing from partition statistics.

The train and test parts hold the same rows as the whole-table featurize (in table order); the
fitted preprocessing transforms like the whole-table one: exactly for the categories and up to
rounding for the scaler, whose mean and variance come from per-partition moments; with a sample
smaller than the train part, the medians and quartiles are estimates and the moments stay exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlrepo.io import read_table
from mlrepo.params import FeaturizeParams, ValidateParams
from mlrepo.partitioned import featurize as partitioned
from mlrepo.partitioned.featurize import Moments
from mlrepo.schema import FeatureSchema
from mlrepo.stages.featurize import featurize
from mlrepo.stages.validate import validate

ROW_GROUP = 113


def validated(tmp_path: Path, nulls: bool = False) -> tuple[Path, FeatureSchema]:
    rng = np.random.default_rng(5)
    n = 1500
    frame = pd.DataFrame(rng.standard_normal((n, 3)) * [1, 10, 100] + [0, 5, -50])
    frame.columns = ["x0", "x1", "x2"]
    frame["colour"] = rng.choice(["red", "green", "blue", "teal"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    frame.loc[7, "colour"] = "rare"  # one row: in one part, and in the sample only by luck
    frame["y"] = np.where(frame["x0"] + rng.normal(size=n) > 0, "yes", "no")
    if nulls:
        frame.loc[frame.index % 17 == 0, "x1"] = np.nan
        frame.loc[frame.index % 23 == 0, "colour"] = None
    params = ValidateParams(missing="impute" if nulls else "error")
    result = validate(frame, "y", params)
    assert result.frame is not None and result.schema is not None, result.errors
    path = tmp_path / "validated.parquet"
    table = pa.Table.from_pandas(result.frame, preserve_index=False)
    pq.write_table(table, path, row_group_size=ROW_GROUP)
    return path, result.schema


@pytest.mark.parametrize(
    ("scaler", "nulls"),
    [("standard", False), ("standard", True), ("robust", True), ("none", False)],
)
def test_partitioned_featurize_matches_the_whole_table(
    tmp_path: Path, scaler: str, nulls: bool
) -> None:
    path, schema = validated(tmp_path, nulls)
    params = FeaturizeParams(scaler=scaler)  # sample_rows above the train rows: no estimate
    whole = featurize(read_table(path), schema, params)
    train, test = tmp_path / "train.parquet", tmp_path / "test.parquet"
    written = partitioned.featurize(path, schema, params, train, test)
    assert written.sampled is None
    assert (written.train_rows, written.test_rows) == (len(whole.train), len(whole.test))
    for got, expected in [(train, whole.train), (test, whole.test)]:
        frame = pd.read_parquet(got)
        assert pq.ParquetFile(got).num_row_groups == -(-1500 // ROW_GROUP)
        ordered = frame.sort_values([*schema.names]).reset_index(drop=True)
        pd.testing.assert_frame_equal(
            ordered,
            expected.sort_values([*schema.names]).reset_index(drop=True),
            check_dtype=False,
        )
    probe = whole.test[schema.names]
    ours = written.preprocessor.transform(probe)
    np.testing.assert_allclose(ours, whole.preprocessor.transform(probe), rtol=1e-12, atol=1e-12)
    assert list(written.preprocessor.get_feature_names_out()) == list(
        whole.preprocessor.get_feature_names_out()
    )


def test_a_sample_estimates_only_the_order_statistics(tmp_path: Path) -> None:
    path, schema = validated(tmp_path, nulls=True)
    train, test = tmp_path / "train.parquet", tmp_path / "test.parquet"
    whole = featurize(read_table(path), schema, FeaturizeParams())
    written = partitioned.featurize(path, schema, FeaturizeParams(sample_rows=200), train, test)
    assert written.sampled == 200
    numeric = dict(written.preprocessor.named_transformers_["numeric"].steps)
    expected = dict(whole.preprocessor.named_transformers_["numeric"].steps)
    # The median is estimated; the scaler's variance is exact given it.
    medians = numeric["impute"].statistics_
    assert not np.array_equal(medians, expected["impute"].statistics_)
    values = pd.read_parquet(train)[schema.numeric].to_numpy()
    filled = np.where(np.isnan(values), medians, values)
    np.testing.assert_allclose(numeric["scale"].mean_, filled.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(numeric["scale"].var_, filled.var(axis=0), rtol=1e-12)
    # Every category of the train part is known, sampled or not.
    encoder = dict(written.preprocessor.named_transformers_["categorical"].steps)["one_hot"]
    assert [list(c) for c in encoder.categories_] == [
        sorted(pd.read_parquet(train)["colour"].dropna().unique())
    ]


def test_moments_combine_as_one_pass() -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((1000, 3)) * 1e3 + 1e6
    values[rng.random(values.shape) < 0.1] = np.nan
    combined = Moments.of(values[:10]) + Moments.of(values[10:10]) + Moments.of(values[10:])
    np.testing.assert_allclose(combined.mean, np.nanmean(values, axis=0), rtol=1e-14)
    np.testing.assert_allclose(combined.var, np.nanvar(values, axis=0), rtol=1e-10)
    np.testing.assert_array_equal(combined.n, (~np.isnan(values)).sum(axis=0))
