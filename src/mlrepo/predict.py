"""Batch scoring: check a CSV or Parquet file against the model's feature schema, then score it.

``predict_file`` reads the input ``chunk_rows`` rows at a time (``io.read_chunks``), so a file of
millions of rows never sits in memory whole (let alone twice). Each chunk is checked by the
prediction core (``LoadedModel.problems``: the schema check the validate stage and the HTTP
service also use, row numbers counted in the file), scored, and appended to a
temporary file beside the output; the output appears, renamed into place, only when every chunk
passed. Once a chunk has a problem no more rows are scored, but the remaining chunks are still
checked in the same single pass, so one run reports every problem in the file and writes nothing.

The output holds the columns the user passes through (ids, the label...), ``prediction`` (the
class with the highest probability) and one ``proba_<class>`` column per class, rows in input
order. ``progress=True`` shows the rows scored so far on stderr (tqdm; of the total for Parquet,
whose footer has it); the CLI turns it on only for a terminal and never inside a DVC stage.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlrepo.errors import DataError, first_line
from mlrepo.io import atomic_path, check_table_suffix, read_chunks
from mlrepo.prediction import PREDICTION, proba_column
from mlrepo.prediction.core import LoadedModel, score
from mlrepo.problems import Problem, merge_chunks

DEFAULT_CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class Scored:
    rows: int
    chunks: int
    seconds: float


def predict_file(
    model: LoadedModel,
    source: str | Path,
    output: str | Path,
    id_columns: list[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = False,
) -> Scored:
    """Check and score ``source`` chunk by chunk into ``output``; raise ``DataError`` listing
    every problem in the file (row numbers count data rows from 1) and write nothing if any."""
    start = time.perf_counter()
    source, output = Path(source), Path(output)
    check_table_suffix(output, "output")
    keep = list(dict.fromkeys(id_columns or []))
    names = set(model.schema.names)
    taken = {PREDICTION} | {proba_column(c) for c in model.classes}
    if clash := [c for c in keep if c in taken]:
        raise DataError(
            f"--id {', '.join(clash)}: the output already has a column of that name "
            f"({PREDICTION}, proba_<class>); rename the column in {source}"
        )
    problems: list[Problem] = []
    rows = chunks = 0
    with (
        atomic_path(output) as tmp,
        _sink(output, tmp) as sink,
        progress_bar(source, progress) as bar,
    ):
        for chunk in read_chunks(source, chunk_rows):
            if chunks == 0 and (absent := [c for c in keep if c not in chunk.columns]):
                raise DataError(
                    f"{source}: --id column(s) {', '.join(absent)} not found; columns are "
                    f"{', '.join(map(str, chunk.columns[:30]))}"
                )
            features = chunk.drop(columns=[c for c in keep if c not in names])
            problems += model.problems(features, first_row=rows + 1)
            if not problems:
                sink.write(score(model, chunk, keep))
            rows += len(chunk)
            chunks += 1
            bar.update(len(chunk))
        if problems:
            lines = [p.render(str(source)) for p in merge_chunks(problems)]
            raise DataError(
                f"{source} does not fit the model's feature schema; nothing was written. "
                f"{len(lines)} problem(s):\n  - " + "\n  - ".join(lines)
            )
    return Scored(rows=rows, chunks=chunks, seconds=time.perf_counter() - start)


def show_progress(stream: IO[str] | None = None) -> bool:
    """Whether a progress bar helps: a terminal, not a DVC stage (its log is the output),
    and not turned off with ``TQDM_DISABLE``."""
    stream = stream if stream is not None else sys.stderr
    if os.environ.get("DVC_STAGE") or os.environ.get("TQDM_DISABLE"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def progress_bar(source: Path, enabled: bool) -> Any:
    """A tqdm bar of rows on stderr (a no-op when not ``enabled``)."""
    from tqdm import tqdm

    total = None
    if enabled and source.suffix.lower() != ".csv" and source.is_file():
        try:
            total = pq.ParquetFile(source).metadata.num_rows
        except (pa.ArrowException, OSError):
            total = None  # read_chunks reports the unreadable file
    return tqdm(
        total=total,
        desc=f"scoring {source.name}",
        unit=" rows",
        unit_scale=True,
        file=sys.stderr,
        disable=not enabled,
        leave=True,
        dynamic_ncols=True,
    )


class _Sink:
    """Appends scored chunks to an open output file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _CsvSink(_Sink):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.handle: IO[str] = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self.header = True

    def write(self, frame: pd.DataFrame) -> None:
        frame.to_csv(self.handle, index=False, header=self.header)
        self.header = False

    def close(self) -> None:
        self.handle.close()


class _ParquetSink(_Sink):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        elif not table.schema.equals(self.writer.schema, check_metadata=False):
            # A CSV column can be read as int in one chunk and float (a gap) in the next.
            try:
                table = table.cast(self.writer.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(
                    f"a passed-through column changes type between chunks ({first_line(exc)});"
                    " use a larger --chunk-rows or a Parquet input"
                ) from None
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _sink(output: Path, tmp: Path) -> _Sink:
    return _CsvSink(tmp) if output.suffix.lower() == ".csv" else _ParquetSink(tmp)
