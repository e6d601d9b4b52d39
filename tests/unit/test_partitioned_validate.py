"""validate partition by partition gives the whole-table validate's report, schema and rows.

Each table is written with small row groups, so every rule meets rows in several partitions:
duplicates of a row in another partition, a constant column, a leak visible only across
partitions, nulls, text among numbers, an identifier, an outlier sample. The tasks run on this
machine's threads here; tests/integration/test_cluster_partitioned.py runs them on a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlrepo.errors import ParamsError
from mlrepo.io import read_table, write_parquet
from mlrepo.params import ValidateParams
from mlrepo.partitioned import validate as partitioned
from mlrepo.stages.validate import validate

ROW_GROUP = 97  # not a divisor of the row count: the last partition is short


def table(n: int = 1000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.standard_normal((n, 4)), columns=[f"num_{i}" for i in range(4)])
    frame["cat"] = rng.choice(["a", "b", "c"], size=n)
    frame["target"] = (frame["num_0"] + rng.normal(scale=0.7, size=n) > 0).astype(np.int64)
    frame.loc[[5, 400, 950], "num_1"] = 60.0  # outliers
    frame.iloc[610] = frame.iloc[3]  # a duplicate of a row of the first partition
    frame.iloc[880] = frame.iloc[3]
    frame.iloc[20] = frame.iloc[19]  # and one inside a partition
    return frame


def write(frame: pd.DataFrame, path: Path, row_group: int = ROW_GROUP) -> Path:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, row_group_size=row_group)
    return path


def both(
    frame: pd.DataFrame,
    tmp_path: Path,
    params: ValidateParams,
    target: str = "target",
    row_group: int = ROW_GROUP,
) -> tuple[Any, Any, Path]:
    path = write(frame, tmp_path / "raw.parquet", row_group)
    whole = validate(read_table(path), target, params, "raw.parquet")
    out = tmp_path / "validated.parquet"
    parts = partitioned.validate(path, out, target, params, "raw.parquet")
    return whole, parts, out


def _repeat_partition(frame: pd.DataFrame) -> pd.DataFrame:
    """The second partition's rows all repeat the first's: none of them is kept."""
    frame = frame.copy()
    frame.iloc[ROW_GROUP : 2 * ROW_GROUP] = frame.iloc[:ROW_GROUP].to_numpy()
    return frame.astype(table().dtypes.to_dict())


CASES = {
    "defaults": (lambda f: f, ValidateParams()),
    "missing-drop": (
        lambda f: f.assign(num_2=f["num_2"].mask(f.index % 37 == 0)),
        ValidateParams(missing="drop"),
    ),
    "missing-impute": (
        lambda f: f.assign(cat=f["cat"].mask(f.index % 41 == 0)),
        ValidateParams(missing="impute"),
    ),
    "duplicates-warn": (lambda f: f, ValidateParams(duplicates="warn")),
    "constant-drop": (lambda f: f.assign(flat=1.5, one="x"), ValidateParams(constant="drop")),
    "leak-warn": (
        lambda f: f.assign(leak=np.where(f["target"] == 1, "yes", "no"), cut=f["target"] * 10.0),
        ValidateParams(leakage="warn"),
    ),
    "identifier-and-listed": (
        lambda f: f.assign(key=[f"id-{i}" for i in range(len(f))], extra=0.0),
        ValidateParams(drop_columns=["extra", "absent"], duplicates="warn"),
    ),
    "sampled-outliers": (lambda f: f, ValidateParams(sample_rows=300, max_outlier_share=0.001)),
    "declared-rules": (
        lambda f: f.assign(num_2=f["num_2"].mask(f.index % 31 == 0), code=f.index % 4),
        ValidateParams(
            missing="impute",
            columns={
                "num_0": {"min": -10, "max": 10},
                "cat": {"allowed": ["a", "b", "c", "d"]},
                "code": {"dtype": "categorical"},
            },
        ),
    ),
    "a-partition-all-repeats": (lambda f: _repeat_partition(f), ValidateParams()),
    "imbalance": (
        lambda f: f[(f["target"] == 0) | (f.index % 25 == 0)],
        ValidateParams(max_imbalance_ratio=2.0),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_partitioned_validate_matches_the_whole_table(case: str, tmp_path: Path) -> None:
    change, params = CASES[case]
    frame = change(table())
    whole, parts, out = both(frame, tmp_path, params)
    assert whole.errors == [], whole.errors
    assert parts.report() == whole.report()
    assert parts.schema == whole.schema
    write_parquet(whole.frame, tmp_path / "whole.parquet")  # as the stage writes it
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "whole.parquet"))
    assert pq.ParquetFile(out).num_row_groups == -(-len(frame) // ROW_GROUP)


def test_a_table_of_one_partition(tmp_path: Path) -> None:
    whole, parts, out = both(table(), tmp_path, ValidateParams(), row_group=10_000)
    assert pq.ParquetFile(out).num_row_groups == 1
    assert parts.report() == whole.report() and parts.schema == whole.schema


def test_partitioned_validate_reports_what_the_whole_table_reports(tmp_path: Path) -> None:
    frame = table()
    frame["text"] = [str(v) for v in np.arange(len(frame), dtype=float)]
    frame.loc[[150, 700], "text"] = "n/a"  # text among numbers, in two partitions
    frame.loc[[10, 500], "num_3"] = np.nan  # nulls where none are allowed
    frame["flat"] = 2.0
    frame["cut"] = frame["target"] * 10.0  # leaks the label
    whole, parts, out = both(frame, tmp_path, ValidateParams())
    assert not out.exists()
    key = [(p.check, p.column, p.severity) for p in whole.problems]
    assert [(p.check, p.column, p.severity) for p in parts.problems] == key
    assert {"numeric_dtype", "not_nullable", "constant_column", "leakage"} <= {k[0] for k in key}
    by_check = {p.check: p for p in parts.problems}
    # Rows are numbered in the table, across partitions; the counts are the table's.
    assert "rows 151, 701" in by_check["numeric_dtype"].message
    assert by_check["numeric_dtype"] == {p.check: p for p in whole.problems}["numeric_dtype"]
    assert by_check["not_nullable"].count == 2
    assert "rows 11" in by_check["not_nullable"].message
    assert parts.report()["passed"] is False and parts.report()["rows_out"] == 0


def test_declared_ranges_and_categories_broken_in_several_partitions(tmp_path: Path) -> None:
    frame = table()
    frame.loc[[30, 600, 990], "num_0"] = 99.0
    frame.loc[[150, 151], "cat"] = "z"
    params = ValidateParams(
        columns={"num_0": {"max": 10}, "cat": {"allowed": ["a", "b", "c"]}, "gone": {}}
    )
    whole, parts, out = both(frame, tmp_path, params)
    assert not out.exists()
    assert [(p.check, p.column, p.count) for p in parts.errors] == [
        (p.check, p.column, p.count) for p in whole.errors
    ]
    by_column = {p.column: p for p in parts.errors}
    assert by_column["num_0"].count == 3 and "rows 31" in by_column["num_0"].message
    assert by_column["cat"].examples == ["'z'"] and by_column["gone"].check == "column_in_dataframe"


def test_a_missing_target_or_a_single_class_stops_before_the_rules(tmp_path: Path) -> None:
    frame = table()
    whole, parts, _ = both(frame, tmp_path, ValidateParams(), target="label")
    assert parts.report() == whole.report()
    assert [p.check for p in parts.errors] == ["target_present"]
    single = frame.assign(target=1)
    whole, parts, _ = both(single, tmp_path, ValidateParams())
    assert parts.report() == whole.report()
    assert "target_classes" in {p.check for p in parts.errors}


def test_sample_rows_null_is_refused_on_the_partitioned_path(tmp_path: Path) -> None:
    path = write(table(), tmp_path / "raw.parquet")
    with pytest.raises(ParamsError, match=r"validate\.sample_rows is null"):
        partitioned.validate(
            path, tmp_path / "out.parquet", "target", ValidateParams(sample_rows=None), "raw"
        )
