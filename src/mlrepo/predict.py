"""Batch scoring: check a CSV or Parquet file against the model's feature schema, then score it.

``predict_file`` reads the input ``chunk_rows`` rows at a time, so a file of millions of rows
never sits in memory whole (let alone twice). Each chunk is checked with ``check_input`` (the
schema check the validate stage and the HTTP service also use), scored, and appended to a
temporary file beside the output; the output appears, renamed into place, only when every chunk
passed. Once a chunk has a problem no more rows are scored, but the remaining chunks are still
checked in the same single pass, so one run reports every problem in the file and writes nothing.

The output holds the columns the user passes through (ids, the label...), ``prediction`` (the
class with the highest probability) and one ``proba_<class>`` column per class, rows in input
order. ``progress=True`` shows the rows scored so far on stderr (tqdm; of the total for Parquet,
whose footer has it); the CLI turns it on only for a terminal and never inside a DVC stage.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlrepo.bundle import ModelBundle
from mlrepo.errors import DataError
from mlrepo.io import TABLE_SUFFIXES, atomic_path
from mlrepo.predictor import Predictor, load_predictor
from mlrepo.registry import resolve
from mlrepo.schema import Feature, FeatureSchema, Problem, check_frame

BackendChoice = Literal["auto", "onnx", "sklearn"]
BACKENDS: tuple[BackendChoice, ...] = ("auto", "onnx", "sklearn")
PREDICTION = "prediction"
DEFAULT_CHUNK_ROWS = 100_000
# Suggested fixes when a table to score breaks a rule (the validate stage suggests params).
PREDICT_FIXES = {
    "column_in_schema": "remove the column, or pass it through to the output with --id NAME",
    "column_in_dataframe": "add the column; the model was trained with it",
    "isin": "use one of the categories seen in training",
}


@dataclass(frozen=True)
class LoadedModel:
    bundle: ModelBundle
    predictor: Predictor
    version: str


def load_model(
    ref: str | None = None, backend: BackendChoice = "auto", root: str | Path = "."
) -> LoadedModel:
    """Resolve ``ref`` (None: the production model) and deserialize it for ``backend``."""
    return from_bundle(resolve(ref, root=root), backend)


def from_bundle(bundle: ModelBundle, backend: BackendChoice = "auto") -> LoadedModel:
    """Deserialize a verified bundle for ``backend``."""
    return LoadedModel(bundle, load_predictor(bundle, backend), model_version(bundle))


def model_version(bundle: ModelBundle) -> str:
    """The registry version, else the commit, else the md5 of the model file (workspace)."""
    if bundle.version:
        return bundle.version
    if bundle.rev:
        return bundle.rev[:12]
    return "md5-" + hashlib.md5(bundle.files["pipeline"]).hexdigest()[:12]


def proba_column(cls: Any) -> str:
    return f"proba_{cls}"


def prediction_features(schema: FeatureSchema) -> list[Feature]:
    """The features as rules for data to score: the ranges the schema holds are the ones
    observed in training (for drift reports), so a new value outside them is not an error."""
    return [f.model_copy(update={"min": None, "max": None}) for f in schema.features]


def check_input(
    frame: pd.DataFrame, features: list[Feature], fixes: dict[str, str] | None = None
) -> list[Problem]:
    """Every way ``frame`` breaks the schema (``schema.check_frame``, strict, categories checked).

    ``check_frame`` costs tens of milliseconds whatever the size of the frame (pandera's
    per-column overhead), which alone would break the service's latency budget; a frame that
    ``_surely_fits`` skips it. Any doubt goes to ``check_frame``, which decides and describes.
    """
    if _surely_fits(frame, features):
        return []
    return check_frame(
        frame,
        features,
        strict=True,
        check_categories=True,
        fixes={**PREDICT_FIXES, **(fixes or {})},
    )


def _surely_fits(frame: pd.DataFrame, features: list[Feature]) -> bool:
    """True only if ``check_frame`` would find nothing: a fast yes, never a verdict of no.

    Whole-block numpy for the numbers, distinct values for the categories; anything unusual
    (another dtype, a non-string category, a declared range) is left to ``check_frame``.
    """
    if len(frame.columns) != len(features) or set(frame.columns) != {f.name for f in features}:
        return False
    if any(f.min is not None or f.max is not None for f in features):
        return False
    numeric = [f for f in features if f.kind == "numeric"]
    dtypes = frame.dtypes
    if any(dtypes[f.name].kind not in "iuf" for f in numeric):
        return False
    if numeric:
        values = frame[[f.name for f in numeric]].to_numpy(dtype="float64")
        if np.isinf(values).any():
            return False
        required = [i for i, f in enumerate(numeric) if not f.nullable]
        if required and np.isnan(values[:, required]).any():
            return False
    for feature in features:
        if feature.kind == "categorical" and not _known_labels(frame[feature.name], feature):
            return False
    return True


def _known_labels(column: pd.Series, feature: Feature) -> bool:
    known = set(feature.categories) if feature.categories is not None else None
    for value in column.unique():
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            if not feature.nullable:
                return False
        # Numbers and booleans are categories only once turned into labels ("1", "True").
        elif not isinstance(value, str) or (known is not None and value not in known):
            return False
    return True


def score(predictor: Predictor, frame: pd.DataFrame, keep: list[str]) -> pd.DataFrame:
    """``keep`` columns of ``frame`` unchanged, the predicted class and one column per class."""
    proba = predictor.predict_proba(frame)
    classes = np.asarray(predictor.classes, dtype=object)
    out = frame[keep].reset_index(drop=True)
    out[PREDICTION] = pd.Series(classes[proba.argmax(axis=1)], dtype=_class_dtype(classes))
    for i, cls in enumerate(predictor.classes):
        out[proba_column(cls)] = proba[:, i]
    return out


def _class_dtype(classes: np.ndarray) -> Any:
    return "int64" if all(isinstance(c, int) and not isinstance(c, bool) for c in classes) else None


@dataclass(frozen=True)
class Scored:
    rows: int
    chunks: int
    seconds: float


def predict_file(
    predictor: Predictor,
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
    _check_suffix(output, "output")
    keep = list(dict.fromkeys(id_columns or []))
    features = prediction_features(predictor.schema)
    names = {f.name for f in features}
    taken = {PREDICTION} | {proba_column(c) for c in predictor.classes}
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
            found = check_input(chunk.drop(columns=[c for c in keep if c not in names]), features)
            problems += [_in_file(p, rows + 1) for p in found]
            if not problems:
                sink.write(score(predictor, chunk, keep))
            rows += len(chunk)
            chunks += 1
            bar.update(len(chunk))
        if problems:
            lines = [p.render(str(source)) for p in _merged(problems)]
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


def read_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The table at ``path``, ``chunk_rows`` rows at a time, each indexed from 0."""
    _check_suffix(path, "input")
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the --input path")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; expected a header row and data rows")
    any_rows = False
    try:
        if path.suffix.lower() == ".csv":
            with pd.read_csv(path, chunksize=chunk_rows) as reader:
                for chunk in reader:
                    any_rows = any_rows or len(chunk) > 0
                    yield chunk.reset_index(drop=True)
        else:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                any_rows = any_rows or batch.num_rows > 0
                yield batch.to_pandas().reset_index(drop=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as CSV: {_first_line(exc)}") from None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot be read as Parquet: {_first_line(exc)}") from None
    if not any_rows:
        raise DataError(f"{path}: has a header but no data rows")


def _check_suffix(path: Path, role: str) -> None:
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(
            f"{path}: unsupported {role} file type '{path.suffix}'; use .csv or .parquet"
        )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


_ROWS = re.compile(r"(rows )(\d+(?:, \d+)*)")


def _in_file(problem: Problem, first_row: int) -> Problem:
    """``problem`` of a chunk, its row numbers shifted to count from the start of the file."""
    if first_row == 1:
        return problem

    def shift(match: re.Match[str]) -> str:
        numbers = (int(n) + first_row - 1 for n in match.group(2).split(", "))
        return match.group(1) + ", ".join(map(str, numbers))

    message, found = _ROWS.subn(shift, problem.message, count=1)
    if not found and problem.count:
        message += f" (in the rows from row {first_row} on)"
    return replace(problem, message=message)


def _merged(problems: list[Problem]) -> list[Problem]:
    """One problem per column and rule: the first chunk's examples, the whole file's count."""
    groups: dict[tuple[str | None, str], list[Problem]] = {}
    for problem in problems:
        groups.setdefault((problem.column, problem.check), []).append(problem)
    merged = []
    for (_, check), group in groups.items():
        first = group[0]
        if len(group) == 1 or check in {"column_in_schema", "column_in_dataframe"}:
            merged.append(first)
            continue
        total = sum(p.count for p in group)
        merged.append(replace(first, count=total, message=f"{first.message}; {total} rows in all"))
    return sorted(merged, key=lambda p: (p.column or "", p.check))


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
                    f"a passed-through column changes type between chunks ({_first_line(exc)});"
                    " use a larger --chunk-rows or a Parquet input"
                ) from None
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _sink(output: Path, tmp: Path) -> _Sink:
    return _CsvSink(tmp) if output.suffix.lower() == ".csv" else _ParquetSink(tmp)
