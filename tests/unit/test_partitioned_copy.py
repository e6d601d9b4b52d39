"""generate with train.distributed and source: file copies the user's table chunk by chunk.

The copy has ``generate.partition_rows`` rows per row group and the same values and dtypes as a
whole-table read, also for a CSV whose chunks pandas would type differently on its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mlrepo.errors import run_cli
from mlrepo.io import read_table
from mlrepo.partitioned import copy_table
from mlrepo.stages import generate


def user_table(n: int = 250) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "count": pd.array(rng.integers(0, 9, size=n), dtype="Int64"),
            "code": [str(v) for v in rng.integers(0, 5, size=n)],
            "x": rng.standard_normal(n),
            "label": rng.choice(["yes", "no"], size=n),
        }
    )
    frame.loc[200, "count"] = pd.NA  # integers in the first chunks, a blank in a later one
    frame.loc[230, "code"] = "n/a"  # numbers, then text
    return frame


@pytest.mark.parametrize("kind", ["csv", "parquet", "parquet-from-arrow"])
def test_the_copy_is_the_whole_table_in_row_groups(tmp_path: Path, kind: str) -> None:
    source = tmp_path / f"user.{kind.split('-')[0]}"
    frame = user_table()
    if kind == "csv":
        frame.to_csv(source, index=False)
    elif kind == "parquet":
        frame.to_parquet(source, index=False)
    else:  # no pandas metadata: an integer column with nulls reads as float64
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        pq.write_table(table, source)
    out = tmp_path / "raw.parquet"
    assert copy_table(source, out, 60, {"source": str(source)}) == 250
    assert pq.ParquetFile(out).num_row_groups == 5
    copied = pd.read_parquet(out)
    pd.testing.assert_frame_equal(copied, read_table(source))
    if kind != "parquet":  # (there, pandas' metadata keeps Int64 in both)
        assert copied["count"].dtype == "float64"
    assert copied.attrs == {"source": str(source)}


def test_generate_copies_a_file_source_on_the_distributed_path(tmp_path: Path) -> None:
    source = tmp_path / "user.csv"
    user_table().to_csv(source, index=False)
    params = tmp_path / "params.yaml"
    settings = {
        "generate": {
            "source": "file",
            "path": str(source),
            "target": "label",
            "partition_rows": 100,
        },
        "train": {"model": "xgboost", "distributed": True},
    }
    params.write_text(yaml.safe_dump(settings))
    out = tmp_path / "raw.parquet"
    assert run_cli(generate.main, ["--params", str(params), "--out", str(out)]) == 0
    assert pq.ParquetFile(out).num_row_groups == 3
    pd.testing.assert_frame_equal(pd.read_parquet(out), read_table(source))


def test_a_wrong_target_is_named_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "user.csv"
    user_table().to_csv(source, index=False)
    params = tmp_path / "params.yaml"
    settings = {
        "generate": {"source": "file", "path": str(source), "target": "lable"},
        "train": {"model": "xgboost", "distributed": True},
    }
    params.write_text(yaml.safe_dump(settings))
    out = tmp_path / "raw.parquet"
    assert run_cli(generate.main, ["--params", str(params), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "target column 'lable' not found" in error and "did you mean 'label'?" in error
    assert not out.exists()
