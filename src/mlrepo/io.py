"""Reading and writing files at the edges of the stages.

Writes are atomic (a temporary file in the same folder, then a rename), so a stage that fails
never leaves a half-written output; JSON has sorted keys so tracked files are byte-stable.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlrepo.errors import DataError, first_line
from mlrepo.logs import get_logger

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
# A read that lasts longer than this logs its progress (to stderr, never into an output).
PROGRESS_EVERY_S = 2.0
# From this many rows on, the steps of a stage and each table write are logged as they start.
LARGE_ROWS = 1_000_000


def read_table(path: str | Path, hint: str = "generate.path in params.yaml") -> pd.DataFrame:
    """Read a CSV or Parquet table, turning every way it can be unusable into a ``DataError``.

    ``hint`` says where the path came from, for the message when the file is missing.
    """
    path = Path(path)
    _check_table_path(path, hint)
    with _read_errors(path):
        frame = _read_csv(path) if path.suffix.lower() == ".csv" else _read_parquet(path)
    if frame.shape[1] == 0:
        raise DataError(f"{path}: no columns found; expected a header row")
    if len(frame) == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return frame


def read_chunks(
    path: str | Path,
    chunk_rows: int,
    hint: str = "the --input path",
    dtypes: dict[str, Any] | None = None,
) -> Iterator[pd.DataFrame]:
    """The table at ``path``, ``chunk_rows`` rows at a time, each indexed from 0: the same
    checks and messages as ``read_table``, without the whole table in memory. ``dtypes``: the
    dtype of each CSV column (else pandas infers one per chunk)."""
    path = Path(path)
    _check_table_path(path, hint)
    any_rows = False
    with _read_errors(path):
        if path.suffix.lower() == ".csv":
            with pd.read_csv(path, chunksize=chunk_rows, dtype=dtypes) as reader:
                for chunk in reader:
                    any_rows = any_rows or len(chunk) > 0
                    yield chunk.reset_index(drop=True)
        else:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                any_rows = any_rows or batch.num_rows > 0
                yield batch.to_pandas().reset_index(drop=True)
    if not any_rows:
        raise DataError(f"{path}: has a header but no data rows")


def check_table_suffix(path: Path, role: str = "") -> None:
    """``path`` names a table file (CSV or Parquet) by its suffix."""
    if path.suffix.lower() not in TABLE_SUFFIXES:
        kind = f"{role} file type" if role else "file type"
        raise DataError(f"{path}: unsupported {kind} '{path.suffix}'; use .csv or .parquet")


def _check_table_path(path: Path, hint: str) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found; check {hint}")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a .csv or .parquet file")
    check_table_suffix(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; expected a header row and data rows")


@contextmanager
def _read_errors(path: Path) -> Iterator[None]:
    """Every way a CSV or Parquet reader says a file is unreadable, as one ``DataError``."""
    try:
        yield
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as CSV: {first_line(exc)}") from None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{path}: cannot be read as Parquet (corrupt or not Parquet): {first_line(exc)}"
        ) from None


class _Progress:
    """Log 'path: n% read' lines once a read has lasted ``PROGRESS_EVERY_S``, then as often."""

    def __init__(self, path: Path, total: int, unit: str) -> None:
        self.path, self.total, self.unit = path, max(total, 1), unit
        self.start = self.last = time.monotonic()
        self.logged = False

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last, self.logged = now, True
            get_logger().info(
                "%s: %d%% read (%s of %s %s, %.0f s)",
                self.path,
                100 * done // self.total,
                f"{done:,}",
                f"{self.total:,}",
                self.unit,
                now - self.start,
            )

    def done(self, rows: int) -> None:
        if self.logged:
            get_logger().info(
                "%s: read %s rows in %.1f s", self.path, f"{rows:,}", time.monotonic() - self.start
            )


class Steps:
    """Log each step of a long computation as it starts: on large tables, or once it is slow."""

    def __init__(self, what: str, rows: int) -> None:
        self.what, self.large = what, rows >= LARGE_ROWS
        self.start = time.monotonic()

    def __call__(self, step: str) -> None:
        elapsed = time.monotonic() - self.start
        if self.large or elapsed >= PROGRESS_EVERY_S:
            get_logger().info("%s: %s (%.0f s so far)", self.what, step, elapsed)


def _read_parquet(path: Path) -> pd.DataFrame:
    """``pq.read_table(path).to_pandas()``, one row group at a time, with a peak of ~1x the table.

    ``self_destruct`` frees each Arrow column once converted and ``split_blocks`` skips the
    consolidating copy, so the frame is not held twice (2.5x the table before).
    """
    handle = pq.ParquetFile(path)
    progress = _Progress(path, handle.metadata.num_rows, "rows")
    groups, rows = [], 0
    for index in range(handle.num_row_groups):
        groups.append(handle.read_row_group(index))
        rows += groups[-1].num_rows
        progress.update(rows)
    table = pa.concat_tables(groups) if groups else handle.schema_arrow.empty_table()
    del groups
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    release_unused_memory()  # the decoding buffers (~1.3x the table) go back to the OS
    progress.done(len(frame))
    return frame


def release_unused_memory() -> None:
    """Hand memory Arrow has freed back to the OS (its allocator keeps it otherwise)."""
    pa.default_memory_pool().release_unused()


class _CountingReader(io.RawIOBase):
    """A binary file that reports how far it has been read, for a CSV's progress lines."""

    def __init__(self, raw: io.BufferedReader, progress: _Progress) -> None:
        self.raw, self.progress, self.position = raw, progress, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        self.position += n or 0
        self.progress.update(self.position)
        return n or 0


def _read_csv(path: Path) -> pd.DataFrame:
    progress = _Progress(path, path.stat().st_size, "bytes")
    with open(path, "rb") as raw:
        frame = pd.read_csv(io.BufferedReader(_CountingReader(raw, progress)))
    progress.done(len(frame))
    return frame


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the output the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> None:
    with atomic_path(path) as tmp:
        writer(tmp)


def write_parquet(frame: pd.DataFrame, path: str | Path, row_group_rows: int | None = None) -> None:
    """``frame`` as Parquet; ``row_group_rows`` rows per row group (None: pyarrow's 1,048,576)."""
    if len(frame) >= LARGE_ROWS:
        get_logger().info("%s: writing %s rows", path, f"{len(frame):,}")
    write_with(
        path,
        lambda tmp: frame.to_parquet(
            tmp, index=False, engine="pyarrow", row_group_size=row_group_rows
        ),
    )


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars and arrays so ``json`` can write them."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return to_jsonable(value.tolist())
    if hasattr(value, "item"):
        return value.item()
    return value


def dumps_json(data: Any) -> str:
    return json.dumps(to_jsonable(data), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(data: Any, path: str | Path) -> None:
    text = dumps_json(data)
    write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; run the stage that writes it first") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from None


def file_md5(path: str | Path) -> str:
    """md5 of a file's bytes, the same hash DVC records in dvc.lock."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
