"""featurize partition by partition: a stratified seeded split, preprocessing from statistics.

Together the train and test parts hold every row once, each class split in proportion, and the
same seed gives the same bytes. The fitted preprocessing transforms like one fitted on the whole
train part in one process: exactly for the categories and up to rounding for the scaler, whose
mean and variance come from per-partition moments; with a sample smaller than the train part,
the medians and quartiles are estimates and the moments stay exact.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlrepo.errors import DataError
from mlrepo.io import read_table
from mlrepo.params import FeaturizeParams, ValidateParams
from mlrepo.partitioned import featurize as partitioned
from mlrepo.partitioned.featurize import Moments
from mlrepo.schema import FeatureSchema
from mlrepo.stages.featurize import build_preprocessor, featurize
from mlrepo.stages.validate import validate

ROW_GROUP = 113


def validated(
    tmp_path: Path, nulls: bool = False, row_group: int = ROW_GROUP
) -> tuple[Path, FeatureSchema]:
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
    pq.write_table(table, path, row_group_size=row_group)
    return path, result.schema


def both_parts(tmp_path: Path, name: str = "") -> tuple[Path, Path]:
    return tmp_path / f"train{name}.parquet", tmp_path / f"test{name}.parquet"


@pytest.mark.parametrize(
    ("scaler", "nulls"),
    [("standard", False), ("standard", True), ("robust", True), ("none", False)],
)
def test_partitioned_featurize_fits_what_one_process_fits_on_its_train_part(
    tmp_path: Path, scaler: str, nulls: bool
) -> None:
    path, schema = validated(tmp_path, nulls)
    params = FeaturizeParams(scaler=scaler)  # sample_rows above the train rows: no estimate
    train, test = both_parts(tmp_path)
    written = partitioned.featurize(path, schema, params, train, test)
    assert written.sampled is None
    frames = [pd.read_parquet(train), pd.read_parquet(test)]
    assert (written.train_rows, written.test_rows) == (len(frames[0]), len(frames[1]))
    for part in (train, test):
        assert pq.ParquetFile(part).num_row_groups == -(-1500 // ROW_GROUP)
    whole = build_preprocessor(schema, scaler).fit(frames[0][schema.names])
    probe = frames[1][schema.names]
    np.testing.assert_allclose(
        written.preprocessor.transform(probe), whole.transform(probe), rtol=1e-12, atol=1e-12
    )
    assert list(written.preprocessor.get_feature_names_out()) == list(whole.get_feature_names_out())


def test_the_split_is_stratified_complete_and_seeded(tmp_path: Path) -> None:
    path, schema = validated(tmp_path)
    table = pd.read_parquet(path)
    runs = {}
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        train, test = both_parts(tmp_path, name)
        partitioned.featurize(path, schema, FeaturizeParams(seed=seed), train, test)
        runs[name] = (train.read_bytes(), test.read_bytes())
        parts = [pd.read_parquet(train), pd.read_parquet(test)]
        together = pd.concat(parts).sort_values([*schema.names]).reset_index(drop=True)
        pd.testing.assert_frame_equal(
            together, table.sort_values([*schema.names]).reset_index(drop=True)
        )
        counts = table["y"].value_counts()
        tested = parts[1]["y"].value_counts()
        assert len(parts[1]) == math.ceil(len(table) * 0.2)
        for label, n in counts.items():  # each class's share, to the row
            assert abs(tested[label] - n * len(parts[1]) / len(table)) < 1
    assert runs["a"] == runs["b"] and runs["a"] != runs["c"]


def test_a_table_of_one_partition(tmp_path: Path) -> None:
    path, schema = validated(tmp_path, nulls=True, row_group=10_000)
    train, test = both_parts(tmp_path)
    written = partitioned.featurize(path, schema, FeaturizeParams(), train, test)
    assert (written.train_rows, written.test_rows) == (1200, 300)
    assert pq.ParquetFile(train).num_row_groups == pq.ParquetFile(test).num_row_groups == 1


def test_a_class_too_small_to_split_is_the_whole_table_message(tmp_path: Path) -> None:
    path, schema = validated(tmp_path)
    frame = pd.read_parquet(path)
    frame.loc[3, "y"] = "maybe"  # one row of a third class
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=100)
    schema = schema.model_copy(update={"classes": ["maybe", "no", "yes"]})
    train, test = both_parts(tmp_path)
    with pytest.raises(DataError, match=r"class\(es\) 'maybe' have a single row"):
        partitioned.featurize(path, schema, FeaturizeParams(), train, test)
    assert not train.exists() and not test.exists()


def test_a_sample_estimates_only_the_order_statistics(tmp_path: Path) -> None:
    path, schema = validated(tmp_path, nulls=True)
    train, test = both_parts(tmp_path)
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
