"""Tables that no process holds whole: validate and featurize on the ``train.distributed`` path.

A partition is one Parquet row group. Each pass over a table is one task per partition
(:func:`run`): the task reads its row group, works on it alone and returns what it found (counts,
hashes, statistics, a sample) or the rows to write. The stage's process combines the findings in
partition order and writes its outputs one row group per partition (:class:`RowGroupWriter`),
so it holds a few partitions at a time plus what the rules need of every row (validate: a hash),
never the table. The tasks run where train's fits run (:mod:`mlrepo.cluster`): on the Dask
cluster ``DASK_SCHEDULER_ADDRESS`` names, else on this machine's cores; every task is a pure
function of its partition and the combining happens here in partition order, so the outputs are
the same bytes either way.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
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
from mlrepo.io import atomic_path, read_chunks, release_unused_memory

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

    On the connected cluster (the Dask client's futures) or on this machine's cores (a thread
    pool). One task per worker thread, and one more, are submitted
    ahead of the result being consumed: the results waiting (whole partitions, when a pass
    returns rows to write) stay a few partitions' worth here and on each worker, however slowly
    they are written.
    """
    remote = cluster.current()
    call = functools.partial(_call, task, args)
    if remote is not None:
        # The client itself, not client.get_executor(): its executor keeps every future it
        # made, so every result would stay in the workers' memory until the pass ended.
        yield from _windowed(remote.client, call, items, remote.threads)
        return
    workers = max(1, min(cores.available(), len(items)))
    with ThreadPoolExecutor(workers, thread_name_prefix="partition") as pool:
        yield from _windowed(pool, call, items, workers)


def _submit(pool: Any, call: Callable[[T], R], item: T) -> Future[R]:
    if isinstance(pool, Executor):
        return pool.submit(call, item)
    future: Future[R] = pool.submit(call, item, pure=False)  # a distributed.Client
    return future


def _call(task: Callable[..., R], args: tuple[Any, ...], item: Any) -> R:
    return task(item, *args)


def _windowed(pool: Any, call: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``call`` for each item through ``pool`` (an executor or a Dask client), in order, with
    ``workers + 1`` submitted ahead of the one consumed."""
    pending: deque[Future[R]] = deque()
    upcoming = iter(items)
    try:
        for item in itertools.islice(upcoming, workers + 1):
            pending.append(_submit(pool, call, item))
        while pending:
            result = pending.popleft().result()
            for item in itertools.islice(upcoming, 1):
                pending.append(_submit(pool, call, item))
            yield result
    finally:
        for future in pending:  # the consumer stopped early (an error): drop the rest
            future.cancel()


def summed_counts(counts: list[pd.Series]) -> pd.Series:
    """The partitions' value counts added up, largest first (as ``value_counts`` orders them;
    equal counts in the order the values first appear)."""
    total = pd.concat(counts).groupby(level=0, sort=False).sum()
    return total.sort_values(ascending=False, kind="stable")


def positions_in(sizes: Sequence[int], positions: np.ndarray | None) -> list[np.ndarray | None]:
    """Sorted ``positions`` in a sequence of consecutive pieces of ``sizes`` rows (partitions,
    or the rows of each partition that some rule keeps), split by piece and made relative to
    it; None for every piece when ``positions`` is None (every row)."""
    if positions is None:
        return [None] * len(sizes)
    starts = np.cumsum([0, *sizes])
    bounds = np.searchsorted(positions, starts)
    return [
        positions[a:b] - start
        for a, b, start in zip(bounds[:-1], bounds[1:], starts[:-1], strict=True)
    ]


class RowGroupWriter:
    """A Parquet file written one frame (one row group) at a time, moved into place on success.

    Every frame is stored with the column types of ``schema`` (None: the first frame's), so a
    partition whose text column happens to be all null keeps the column's type; the pandas
    metadata is the first frame's.
    """

    def __init__(self, path: str | Path, schema: pa.Schema | None) -> None:
        self._atomic = atomic_path(path)
        self._schema = None if schema is None else schema.remove_metadata()
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
                assert self._schema is not None, "nothing written and no schema given"
                self._writer = pq.ParquetWriter(self._tmp, self._schema)
            if self._writer is not None:
                self._writer.close()
        finally:
            self._atomic.__exit__(kind, exc, trace)


def copy_table(path: str | Path, out: str | Path, rows: int, attrs: dict[str, str]) -> int:
    """The user's CSV or Parquet table at ``path`` rewritten to ``out`` as Parquet, ``rows``
    rows per row group (so per partition), one chunk in memory at a time; the rows written.

    A Parquet table is copied as Arrow record batches, in its own column types. A CSV is read
    twice: first for the dtype of each column over every chunk (pandas infers one per chunk: a
    column whose first chunk holds integers and a later one a blank is float), so each column
    gets the dtype a whole-table read gives it. ``attrs`` go into the pandas metadata, as
    ``DataFrame.attrs`` (generate records the source there).
    """
    if Path(path).suffix.lower() != ".csv":
        return _copy_parquet(Path(path), out, rows, attrs)
    hint = "generate.path in params.yaml"
    dtypes = _csv_dtypes(path, rows, hint)
    with RowGroupWriter(out, None) as writer:
        for chunk in read_chunks(path, rows, hint, dtypes):
            chunk.columns = [str(c) for c in chunk.columns]
            chunk.attrs.update(attrs)
            writer.write(chunk)
    return writer.rows


def _copy_parquet(path: Path, out: str | Path, rows: int, attrs: dict[str, str]) -> int:
    try:
        source = pq.ParquetFile(path)
        schema = source.schema_arrow
        empty = schema.empty_table().to_pandas()
        empty.attrs.update(attrs)
        # The source's own pandas metadata (index, dtypes), or pandas' for its columns, with attrs.
        described = pa.Schema.from_pandas(empty, preserve_index=False).metadata
        metadata = {**(schema.metadata or {}), b"pandas": described[b"pandas"]}
        if schema.metadata and b"pandas" in schema.metadata:
            pandas_meta = json.loads(schema.metadata[b"pandas"])
            pandas_meta["attributes"] = {**pandas_meta.get("attributes", {}), **attrs}
            metadata[b"pandas"] = json.dumps(pandas_meta).encode()
        schema = schema.with_metadata(metadata)
        written = 0
        with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            for batch in source.iter_batches(batch_size=rows):
                writer.write_table(pa.Table.from_batches([batch]).replace_schema_metadata(metadata))
                written += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{path}: cannot be read as Parquet (corrupt or not Parquet): {first_line(exc)}"
        ) from None
    return written


def _csv_dtypes(path: str | Path, rows: int, hint: str) -> dict[str, str]:
    kinds: dict[str, set[str]] = {}
    for chunk in read_chunks(path, rows, hint):
        for name, dtype in chunk.dtypes.items():
            kind = dtype.kind if isinstance(dtype, np.dtype) else "O"
            kinds.setdefault(str(name), set()).add(kind)
    return {name: _unified(found) for name, found in kinds.items()}


def _unified(kinds: set[str]) -> str:
    """The dtype of a column whose chunks had dtypes of these kinds."""
    if kinds <= {"i", "u"}:
        return "int64"
    if kinds <= {"i", "u", "f"}:
        return "float64"
    if kinds == {"b"}:
        return "bool"
    return "str"
