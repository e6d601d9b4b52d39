"""Experiments as ``dvc exp show --json`` reports them: one flat row per revision.

A row holds the revision (``workspace``, a branch's commit, or an experiment), its name, its
parent commit, and every metric and param flattened to dotted names
(``metrics/evaluate.json:accuracy``, ``params.yaml:train.model``), so a table can sort on any.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from mlrepo.errors import MlrepoError

KEY_COLUMNS = ["rev", "name", "parent", "timestamp"]


def run_exp_show(project: Path, timeout: float = 120) -> list[dict[str, Any]]:
    """``dvc exp show --json`` of ``project`` (all branches' experiments: ``-A`` is not used,
    to keep it quick on a long history)."""
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    try:
        done = subprocess.run(
            [dvc, "exp", "show", "--json"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MlrepoError(f"`dvc exp show --json` in {project} failed: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MlrepoError(
            f"`dvc exp show --json` in {project} exited {done.returncode}: {last}. Fix: run "
            "the app from the project folder (or set MLREPO_PROJECT)"
        )
    shown: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return shown


def experiment_rows(shown: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per revision of ``dvc exp show --json``'s output."""
    rows: list[dict[str, Any]] = []
    for entry in shown:
        rows.append(_row(entry, parent=None))
        for group in entry.get("experiments") or []:
            for exp in group.get("revs") or []:
                rows.append(_row(exp, parent=entry.get("rev")))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=KEY_COLUMNS)
    rest = sorted(c for c in frame.columns if c not in KEY_COLUMNS)
    metrics = [c for c in rest if c.startswith("metrics")]
    return frame[KEY_COLUMNS + metrics + [c for c in rest if c not in metrics]]


def _row(entry: dict[str, Any], parent: str | None) -> dict[str, Any]:
    data = entry.get("data") or {}
    row: dict[str, Any] = {
        "rev": entry.get("rev") if entry.get("rev") == "workspace" else str(entry.get("rev"))[:7],
        "name": entry.get("name") or "",
        "parent": (parent or "")[:7] if parent != "workspace" else "workspace",
        "timestamp": data.get("timestamp") or "",
    }
    for section in ("metrics", "params"):
        for file, content in (data.get(section) or {}).items():
            for key, value in _flat((content or {}).get("data") or {}):
                row[f"{file}:{key}"] = _cell(value)
    return row


def _flat(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(_flat(value, name + "."))
        else:
            items.append((name, value))
    return items


def _cell(value: Any) -> Any:
    # Lists and None in one column with numbers would make the column unsortable.
    return json.dumps(value) if isinstance(value, list) else value


def label(row: pd.Series) -> str:
    name = f" ({row['name']})" if row["name"] else ""
    return f"{row['rev']}{name}"


def compare(rows: pd.DataFrame, a: str, b: str, every_param: bool = False) -> pd.DataFrame:
    """The metrics (and the params that differ, or all) of revisions ``a`` and ``b`` (labels
    from ``label``) side by side, with ``b - a`` for numbers."""
    labels = rows.apply(label, axis=1)
    first, second = rows[labels == a].iloc[0], rows[labels == b].iloc[0]
    lines = []
    for column in rows.columns:
        if column in KEY_COLUMNS:
            continue
        x, y = first[column], second[column]
        is_metric = column.startswith("metrics")
        if not is_metric and not every_param and _same(x, y):
            continue
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        lines.append(
            {
                "": column,
                a: _show(x),
                b: _show(y),
                "b - a": (float(y) - float(x)) if numbers and not _nan(x, y) else None,
            }
        )
    return pd.DataFrame(lines, columns=["", a, b, "b - a"])


def _nan(*values: Any) -> bool:
    return any(isinstance(v, float) and v != v for v in values)


def _same(x: Any, y: Any) -> bool:
    return (pd.isna(x) and pd.isna(y)) if _nan(x) or _nan(y) or x is None else x == y


def _show(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
