"""Drift in the app: the latest report of the ``monitor`` stage, and a check of an uploaded CSV.

The report is read from the files the ``monitor`` stage writes (paths as in ``dvc.yaml``). An
uploaded CSV is compared with the training data of the model the service holds, through
``mlrepo drift``'s own core (``run_drift``): the reference is resolved by the registry, whose
files are hash-checked against their ``dvc.lock`` before anything is loaded.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlrepo.errors import MlrepoError

if TYPE_CHECKING:
    from mlrepo.monitor.command import Outcome

# The monitor stage's outputs (dvc.yaml).
REPORT_JSON = "reports/drift.json"
REPORT_MD = "reports/drift.md"
REPORT_PLOTS = "reports/drift_plots"


@dataclass(frozen=True)
class LatestReport:
    result: dict[str, Any]
    markdown: str
    plots: list[Path]  # one PNG per column, the predicted classes included

    def feature_rows(self) -> list[dict[str, Any]]:
        rows = []
        for column, test in sorted((self.result.get("features") or {}).items()):
            rows.append({"column": column, **test})
        prediction = self.result.get("prediction")
        if prediction:
            rows.append({"column": "prediction (predicted class)", **prediction})
        return rows


COLUMNS = [
    "column",
    "drift",
    "test",
    "statistic",
    "score",
    "adjusted_score",
    "threshold",
    "kind",
    "reference_rows",
    "current_rows",
    "current_missing",
    "new_categories",
]


def drift_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Drift tests as a table for people: the verdict first, scores in 4 significant digits
    (p-values reach 1e-30, which a plain decimal column shows as 0.0000...)."""
    frame = pd.DataFrame(rows)
    for column in ("score", "adjusted_score", "threshold"):
        if column in frame:
            frame[column] = [_short(v) for v in frame[column]]
    if "drift" in frame:
        frame["drift"] = ["yes" if v else "no" for v in frame["drift"]]
    if "new_categories" in frame:
        frame["new_categories"] = [", ".join(v or []) for v in frame["new_categories"]]
    return frame[[c for c in COLUMNS if c in frame] + [c for c in frame if c not in COLUMNS]]


def _short(value: Any) -> str:
    return "" if value is None or value != value else f"{value:.4g}"


def latest_report(project: Path) -> LatestReport:
    path = project / REPORT_JSON
    if not path.is_file():
        raise MlrepoError(
            f"{path}: no drift report yet. Fix: `dvc repro monitor` writes it (run it in "
            f"{project}, or set MLREPO_PROJECT to the project folder)"
        )
    result = json.loads(path.read_text(encoding="utf-8"))
    markdown_path = project / REPORT_MD
    markdown = markdown_path.read_text(encoding="utf-8") if markdown_path.is_file() else ""
    plots = sorted((project / REPORT_PLOTS).glob("*.png"))
    return LatestReport(result, markdown, plots)


def check_csv(name: str, data: bytes, reference: str, project: Path) -> Outcome:
    """Drift of the uploaded table against the training data of the model ``reference``."""
    from mlrepo.monitor.command import run_drift
    from mlrepo.params import MonitorParams, load_params

    params_file = project / "params.yaml"
    params = load_params(params_file) if params_file.is_file() else None
    suffix = Path(name).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="mlrepo-drift-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return run_drift(
                reference,
                params.monitor if params else MonitorParams(),
                current=str(path),
                root=project,
                target=params.generate.target if params else "target",
            )
        except MlrepoError as exc:
            raise type(exc)(str(exc).replace(str(path), name)) from None
