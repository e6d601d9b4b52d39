"""The experiment report for a change: what it did to params, data quality, metrics and plots.

``mlrepo report --base main`` (``make report``) compares the workspace with a base revision and
writes ``report/report.md`` plus the PNG plots of both sides under ``report/``; CI posts the
Markdown on the pull request with CML. DVC computes the diffs (``dvc params diff --md``,
``dvc metrics diff --md``); the validation and drift summaries read the tracked JSON files of both
revisions from git, so the base revision never has to be checked out or reproduced.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlrepo.artifacts import DRIFT_DETAIL, DRIFT_FILE, DRIFT_REPORT, PNG_PLOTS, VALIDATION_FILE
from mlrepo.errors import MlrepoError
from mlrepo.registry.snapshot import Snapshot, commit_of


def _run(args: list[str], root: Path) -> str:
    done = subprocess.run(args, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MlrepoError(
            f"`{' '.join(args[2:] if args[0] == sys.executable else args)}` "
            f"failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}"
        )
    return done.stdout


def _dvc(args: list[str], root: Path) -> str:
    return _run([sys.executable, "-m", "dvc", *args], root)


def check_base(base: str, root: Path) -> str:
    """The base revision's commit, or a clear error naming what to fetch."""
    commit = commit_of(root, base)
    if commit is None:
        raise MlrepoError(
            f"base revision '{base}' not found in the git repository at {root}. Fix: fetch it"
            f" (`git fetch origin {base}`; in CI check out with fetch-depth: 0) or pass --base REV"
        )
    return commit


def _json(side: Snapshot, path: str) -> dict[str, Any] | None:
    data = side.read(path)
    return None if data is None else json.loads(data)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def validation_section(base: Snapshot, workspace: Snapshot) -> str:
    old, new = _json(base, VALIDATION_FILE), _json(workspace, VALIDATION_FILE)
    if new is None:
        return "_No validation report in the workspace: run `dvc repro`._"
    keys = ["passed", "rows_in", "rows_out", "n_features", "n_errors", "n_warnings"]
    rows = [[k, _fmt((old or {}).get(k)), _fmt(new.get(k))] for k in keys]
    text = _table(["", "base", "workspace"], rows)
    issues = [*new.get("errors", []), *new.get("warnings", [])]
    if issues:
        text += "\n\n" + "\n".join(
            f"- **{i['severity']}** `{i.get('column') or 'table'}`: {i['message']}" for i in issues
        )
    return text


def drift_section(base: Snapshot, workspace: Snapshot) -> str:
    old, new = _json(base, DRIFT_FILE), _json(workspace, DRIFT_FILE)
    if new is None:
        return f"_No drift result in the workspace (the monitor stage writes {DRIFT_FILE})._"
    keys = sorted(k for k, v in new.items() if isinstance(v, int | float | bool))
    rows = [[k, _fmt((old or {}).get(k)), _fmt(new.get(k))] for k in keys]
    text = _table(["", "base", "workspace"], rows)
    for name, side in (("base", base), ("workspace", workspace)):
        detail = _json(side, DRIFT_DETAIL) or {}
        drifted = sorted(k for k, v in (detail.get("features") or {}).items() if v.get("drift"))
        if drifted:
            text += f"\n\nDrifted in {name}: " + ", ".join(f"`{name}`" for name in drifted)
    return text + f"\n\nFull report: `{DRIFT_REPORT}`."


def plots_section(base: Snapshot, workspace: Snapshot, out: Path) -> str:
    """Copy each PNG plot of both revisions under ``out`` and lay them side by side."""
    rows = []
    for path in PNG_PLOTS:
        cells = []
        for side, snapshot in (("base", base), ("workspace", workspace)):
            data = snapshot.read(path)
            if data is None:
                cells.append("_absent_")
                continue
            target = out / side / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            cells.append(f"![{side} {Path(path).stem}]({side}/{Path(path).name})")
        rows.append([f"`{path}`", *cells])
    return _table(["plot", "base", "workspace"], rows)


def _diff_table(markdown: str, what: str) -> str:
    """DVC's Markdown diff, or a sentence when it has no rows (DVC prints a bare header)."""
    lines = [line for line in markdown.strip().splitlines() if line.strip()]
    return "\n".join(lines) if len(lines) > 2 else f"_No {what} changed._"


def build_report(base: str, root: Path, out: Path) -> str:
    """Write ``out/report.md`` (and the plots beside it) comparing the workspace with ``base``."""
    commit = check_base(base, root)
    sides = (Snapshot(root, commit), Snapshot(root))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    params = _diff_table(_dvc(["params", "diff", base, "--md"], root), "params")
    metrics = _diff_table(_dvc(["metrics", "diff", base, "--md"], root), "metrics")
    text = "\n\n".join(
        [
            f"# Experiment report: workspace vs `{base}` ({commit[:8]})",
            "## Params\n\n" + params,
            "## Metrics\n\n" + metrics,
            "## Data validation\n\n" + validation_section(*sides),
            "## Drift\n\n" + drift_section(*sides),
            "## Plots\n\n" + plots_section(*sides, out),
        ]
    )
    (out / "report.md").write_text(text + "\n", encoding="utf-8")
    return text
