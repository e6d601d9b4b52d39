"""Batch prediction of an uploaded CSV: the same reading and schema check as ``mlrepo predict``,
then the predictions from the service.

``check_upload`` reads the file with ``io.read_chunks`` and checks it with the prediction
core's ``check_input`` (the one schema check of the CLI, the service and the validate stage),
so a file the CLI refuses is refused here with the same problems, shown as a table: one line
per column and rule, with the rows, the values and the fix.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlrepo.app.client import ServiceClient
from mlrepo.errors import DataError
from mlrepo.problems import Problem
from mlrepo.schema import FeatureSchema, coerce

# The CLI's fix for an unexpected column names its --id option; here it is a widget.
APP_FIXES = {
    "column_in_schema": "remove the column, or choose it under 'Columns to pass through'",
}
MAX_UPLOAD_ROWS = 1_000_000


@dataclass
class Checked:
    """An uploaded table and what the schema check found in it."""

    frame: pd.DataFrame
    keep: list[str]
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem_table(self) -> pd.DataFrame:
        """One row per column and rule: what ``mlrepo predict`` would print, as a table."""
        return pd.DataFrame(
            [
                {
                    "column": p.column or "(table)",
                    "rule": p.check,
                    "rows affected": p.count or None,
                    "problem": p.message,
                    "examples": ", ".join(map(str, p.examples)),
                    "fix": p.fix,
                }
                for p in self.problems
            ],
            columns=["column", "rule", "rows affected", "problem", "examples", "fix"],
        )


def read_upload(name: str, data: bytes) -> pd.DataFrame:
    """The uploaded file as a table, read as ``mlrepo predict`` reads its input."""
    from mlrepo.io import read_chunks

    suffix = Path(name).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="mlrepo-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            chunks = list(read_chunks(path, 100_000))
        except DataError as exc:
            # The temporary path means nothing to the user: name their file instead.
            raise DataError(str(exc).replace(str(path), name)) from None
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    if len(frame) > MAX_UPLOAD_ROWS:
        raise DataError(
            f"{name}: {len(frame)} rows; the app scores at most {MAX_UPLOAD_ROWS}. Fix: use "
            "`mlrepo predict --input FILE --output FILE` for large files"
        )
    return frame


def check_upload(frame: pd.DataFrame, schema: FeatureSchema, keep: list[str]) -> Checked:
    """``frame`` checked against ``schema``; ``keep`` columns are passed through unchecked
    (unless they are features too, as with ``mlrepo predict --id``)."""
    from mlrepo.prediction import PREDICTION, proba_column
    from mlrepo.prediction.core import check_input

    names = set(schema.names)
    keep = list(dict.fromkeys(keep))
    taken = {PREDICTION} | {proba_column(c) for c in schema.classes}
    clash = [c for c in keep if c in taken]
    if clash:
        raise DataError(
            f"pass-through column(s) {', '.join(clash)}: the result already has a column of that "
            f"name ({PREDICTION}, proba_<class>); rename the column in the file"
        )
    problems = check_input(frame.drop(columns=[c for c in keep if c not in names]), schema.features)
    problems = [_with_app_fix(p) for p in problems]
    return Checked(frame, keep, problems)


def _with_app_fix(problem: Problem) -> Problem:
    from dataclasses import replace

    fix = APP_FIXES.get(problem.check)
    return replace(problem, fix=fix) if fix else problem


def score_upload(
    checked: Checked,
    schema: FeatureSchema,
    client: ServiceClient,
    progress: Callable[[float], object] | None = None,
) -> pd.DataFrame:
    """The pass-through columns, ``prediction`` and ``proba_<class>`` per row, in input
    order, as ``mlrepo predict`` writes them; the predictions come from the service."""
    if not checked.ok:
        raise DataError("the file does not fit the model's feature schema; nothing was scored")
    features = coerce(checked.frame, schema)
    parts = []
    total = len(features)
    for part in client.predict_frame(features):
        parts.append(part)
        if progress is not None:
            progress(min(1.0, (part.index[-1] + 1) / total))
    scored = pd.concat(parts) if parts else pd.DataFrame()
    out = checked.frame[checked.keep].reset_index(drop=True)
    return pd.concat([out, scored.reset_index(drop=True)], axis=1)
