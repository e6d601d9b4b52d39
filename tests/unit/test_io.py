"""Reading tables turns every unusable file into a DataError naming it; writes are atomic."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlrepo.errors import DataError
from mlrepo.io import (
    dumps_json,
    file_md5,
    read_json,
    read_table,
    write_csv,
    write_json,
    write_parquet,
    write_with,
)


def read_error(path: Path) -> str:
    with pytest.raises(DataError) as caught:
        read_table(path)
    message = str(caught.value)
    assert str(path) in message, "the message must name the file"
    return message


def test_reads_csv_and_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.5, 2.5], "c": ["a", "b"], "target": ["no", "yes"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    frame.to_parquet(tmp_path / "t.pq", index=False)
    for name in ("t.csv", "t.parquet", "t.pq"):
        read = read_table(tmp_path / name)
        assert read.columns.tolist() == ["x", "c", "target"]
        assert read["x"].tolist() == [1.5, 2.5]
        assert read["target"].tolist() == ["no", "yes"]


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in read_error(tmp_path / "missing.csv")


def test_folder(tmp_path: Path) -> None:
    folder = tmp_path / "data.csv"
    folder.mkdir()
    assert "is a folder" in read_error(folder)


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    assert "the file is empty" in read_error(path)


def test_header_only_csv(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("x,c,target\n", encoding="utf-8")
    assert "has a header but no data rows" in read_error(path)


def test_blank_lines_csv(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text("\n\n\n", encoding="utf-8")
    assert "cannot be read as CSV" in read_error(path)


def test_header_only_parquet(tmp_path: Path) -> None:
    path = tmp_path / "header.parquet"
    pd.DataFrame({"x": pd.Series([], dtype="float64")}).to_parquet(path)
    assert "has a header but no data rows" in read_error(path)


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    assert "cannot be read as Parquet" in read_error(path)


def test_csv_renamed_to_parquet(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    path.write_text("x,target\n1,0\n2,1\n", encoding="utf-8")
    assert "cannot be read as Parquet" in read_error(path)


@pytest.mark.parametrize("name", ["table.txt", "table.xlsx", "table"])
def test_unsupported_suffix(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("x,target\n1,0\n", encoding="utf-8")
    message = read_error(path)
    assert "unsupported file type" in message
    assert ".csv or .parquet" in message


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        pytest.param('x,target\n"1,0\n2,1\n', "EOF inside string", id="unclosed-quote"),
        pytest.param("x,target\n1,0\n2,1,3,4\n", "Expected 2 fields in line 3", id="ragged-row"),
    ],
)
def test_csv_that_pandas_cannot_parse(tmp_path: Path, text: str, detail: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    message = read_error(path)
    assert "cannot be read as CSV" in message
    assert detail in message
    assert "\n" not in message, "only the first line of pandas' error is kept"


def test_csv_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"x,target\n\xff\xfe\x00,1\n")
    assert "cannot be read as CSV" in read_error(path)


class Boom(RuntimeError):
    pass


def failing_writer(tmp: Path) -> None:
    tmp.write_text("half a file", encoding="utf-8")
    raise Boom("disk full")


def test_failed_write_leaves_no_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "model.json"
    with pytest.raises(Boom):
        write_with(target, failing_writer)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json({"accuracy": 0.9}, target)
    before = target.read_bytes()
    with pytest.raises(Boom):
        write_with(target, failing_writer)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_failed_table_write_keeps_the_previous_table(tmp_path: Path) -> None:
    target = tmp_path / "raw.parquet"
    write_parquet(pd.DataFrame({"x": [1, 2]}), target)
    before = target.read_bytes()
    # pyarrow cannot write a column of arbitrary Python objects: the write fails midway.
    with pytest.raises(pa.ArrowException):
        write_parquet(pd.DataFrame({"x": [object(), object()]}), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.parquet"]


def test_successful_write_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "table.csv"
    write_csv(pd.DataFrame({"x": [1]}), target)
    write_csv(pd.DataFrame({"x": [2, 3]}), target)
    assert pd.read_csv(target)["x"].tolist() == [2, 3]
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]


def test_json_is_sorted_byte_stable_and_numpy_safe(tmp_path: Path) -> None:
    data = {"b": np.float64(0.5), "a": np.arange(3), "c": {"z": np.int64(1), "y": True}}
    first = tmp_path / "one.json"
    second = tmp_path / "two.json"
    write_json(data, first)
    write_json(dict(reversed(list(data.items()))), second)
    assert first.read_bytes() == second.read_bytes()
    assert list(json.loads(first.read_text())) == ["a", "b", "c"]
    assert read_json(first) == {"a": [0, 1, 2], "b": 0.5, "c": {"y": True, "z": 1}}


def test_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        dumps_json({"score": float("nan")})


def test_read_json_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_json(tmp_path / "schema.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON") as caught:
        read_json(broken)
    assert str(broken) in str(caught.value)


def test_file_md5_matches_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    payload = os.urandom(3 * (1 << 20) + 17)  # more than one read block
    path.write_bytes(payload)
    assert file_md5(path) == hashlib.md5(payload).hexdigest()


def test_parquet_with_many_row_groups_reads_as_pyarrow_does(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=1000), "c": rng.choice(["a", "b"], 1000), "y": np.arange(1000)}
    )
    frame.loc[5, "x"] = np.nan
    frame.attrs = {"source": "customers.csv"}
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False, row_group_size=128)
    assert pq.ParquetFile(path).num_row_groups == 8
    read = read_table(path)
    pd.testing.assert_frame_equal(read, pq.read_table(path).to_pandas())
    assert read.attrs == {"source": "customers.csv"}
    read.loc[0, "x"] = 1.0  # the frame is the caller's to change (Arrow buffers are read-only)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_slow_reads_log_progress_to_stderr_only(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import mlrepo.io

    frame = pd.DataFrame({"x": np.arange(5000.0), "y": np.arange(5000) % 2})
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False, row_group_size=1000)
    before = path.read_bytes()
    logger = logging.getLogger("mlrepo")
    monkeypatch.setattr(logger, "propagate", True)
    with caplog.at_level(logging.INFO, logger="mlrepo"):
        read_table(path)  # fast: nothing logged
        assert caplog.messages == []
        monkeypatch.setattr(mlrepo.io, "PROGRESS_EVERY_S", 0.0)
        pd.testing.assert_frame_equal(read_table(path), frame)
    assert any(f"{path}: 100% read" in m for m in caplog.messages), caplog.messages
    assert caplog.messages[-1].startswith(f"{path}: read 5,000 rows in ")
    assert path.read_bytes() == before


def test_steps_are_logged_on_large_tables_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from mlrepo.io import LARGE_ROWS, Steps

    # A handler of its own on the mlrepo logger: the root logger's handlers (caplog's) can be
    # left doubled by other tests that configure logging in this process (Streamlit's AppTest).
    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    logger, collect = logging.getLogger("mlrepo"), Collect()
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.addHandler(collect)
    try:
        Steps("validate", LARGE_ROWS - 1)("duplicate rows")
        assert collect.messages == []
        Steps("validate", LARGE_ROWS)("duplicate rows")
    finally:
        logger.removeHandler(collect)
    assert collect.messages == ["validate: duplicate rows (0 s so far)"]
