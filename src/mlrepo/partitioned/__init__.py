"""Tables that no process holds whole: validate and featurize on the ``train.distributed`` path.

A partition is one Parquet row group. Each pass over a table is one task per partition
(:func:`run`): the task reads its row group, works on it alone and returns what it found (counts,
hashes, statistics, a sample) or the rows to write. The stage's process combines the findings in
partition order and writes its outputs one row group per partition (:class:`RowGroupWriter`),
so it holds one partition at a time plus what the rules need of every row (a hash, a label),
never the table. The tasks run where train's fits run (:mod:`mlrepo.cluster`): on the Dask
cluster ``DASK_SCHEDULER_ADDRESS`` names, else on this machine's cores; every task is a pure
function of its partition and the combining happens here in partition order, so the outputs are
the same bytes either way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlrepo import cluster, cores
from mlrepo.errors import DataError, first_line
from mlrepo.io import atomic_path, release_unused_memory

R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class Partition:
    """One row group of a Parquet file, and where its rows sit in the whole table."""

    path: str  # absolute: a worker opens the file itself
    index: int  # the row group
    start: int  # table position of its first row
    rows: int

    @property
    def stop(self) -> int:
        return self.start + self.rows


def partitions(path: str | Path) -> list[Partition]:
    """The row groups of the Parquet table at ``path``, read from its footer."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; run the stage that writes it first")
    try:
        metadata = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot be read as Parquet: {first_line(exc)}") from None
    found, start = [], 0
    for index in range(metadata.num_row_groups):
        rows = metadata.row_group(index).num_rows
        found.append(Partition(str(path.resolve()), index, start, rows))
        start += rows
    if start == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return found


def read(part: Partition, columns: list[str] | None = None) -> pd.DataFrame:
    """The partition's rows (``columns`` only, if given), indexed by their table positions.

    Converted as :func:`mlrepo.io.read_table` converts the whole file, so a column has the same
    dtype here as there.
    """
    try:
        table = pq.ParquetFile(part.path).read_row_group(part.index, columns=columns)
    except FileNotFoundError as exc:
        raise DataError(
            f"a Dask worker cannot open {part.path} ({exc}). Fix: put the data on storage every"
            " worker mounts at the same path, or run the workers on this machine"
        ) from None
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    release_unused_memory()
    frame.index = pd.RangeIndex(part.start, part.stop)
    return frame


def arrow_schema(path: str | Path) -> pa.Schema:
    """The table's columns and their Arrow types."""
    return pq.ParquetFile(path).schema_arrow


def source_of(path: str | Path) -> str:
    """Where the table came from, as generate recorded it (the user's file, or synthetic)."""
    attrs = columns_of(path).attrs
    return str(attrs.get("source", path))


def columns_of(path: str | Path) -> pd.DataFrame:
    """An empty frame with the table's columns and the dtypes :func:`read` gives them."""
    return arrow_schema(path).empty_table().to_pandas()


def run(task: Callable[..., R], items: Sequence[T], *args: Any) -> Iterator[R]:
    """``task(item, *args)`` for every item (a partition, or a partition and what the task needs
    of it alone), results in the order of ``items``.

    On the connected cluster (all its worker threads) or on this machine's cores, through
    :func:`mlrepo.cores.run`; a few tasks run ahead of the one being consumed, so the results
    waiting here stay a few partitions' worth.
    """
    remote = cluster.current()
    workers = remote.threads if remote is not None else cores.available()
    return cores.run(functools.partial(_call, task, args), items, max(1, min(workers, len(items))))


def _call(task: Callable[..., R], args: tuple[Any, ...], item: Any) -> R:
    return task(item, *args)


def positions_in(parts: Sequence[Partition], positions: np.ndarray) -> list[np.ndarray]:
    """Sorted table ``positions`` split by partition, each made relative to its partition."""
    bounds = np.searchsorted(positions, [p.stop for p in parts])
    starts = np.concatenate([[0], bounds[:-1]])
    return [positions[a:b] - p.start for p, a, b in zip(parts, starts, bounds, strict=True)]


class RowGroupWriter:
    """A Parquet file written one frame (one row group) at a time, moved into place on success.

    Every frame is stored with the column types of ``schema``, so a partition whose text column
    happens to be all null keeps the column's type; the pandas metadata is the first frame's.
    """

    def __init__(self, path: str | Path, schema: pa.Schema) -> None:
        self._atomic = atomic_path(path)
        self._schema = schema.remove_metadata()
        self._tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def __enter__(self) -> RowGroupWriter:
        self._tmp = self._atomic.__enter__()
        return self

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        if self._writer is None:
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self._tmp, self._schema)
        self._writer.write_table(table)
        self.rows += len(frame)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if self._writer is None and kind is None:  # no rows: a file with the columns
                self._writer = pq.ParquetWriter(self._tmp, self._schema)
            if self._writer is not None:
                self._writer.close()
        finally:
            self._atomic.__exit__(kind, exc, trace)
