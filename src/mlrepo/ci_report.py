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

from mlrepo.errors import MlrepoError

VALIDATION = "metrics/validation.json"
DRIFT = "metrics/drift.json"
DRIFT_DETAIL = "reports/drift.json"
PNG_PLOTS = ("plots/confusion_matrix.png", "plots/roc.png", "plots/feature_importance.png")


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
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise MlrepoError(
            f"base revision '{base}' not found in the git repository at {root}. Fix: fetch it"
            f" (`git fetch origin {base}`; in CI check out with fetch-depth: 0) or pass --base REV"
        )
    return done.stdout.strip()


def read_at(rev: str | None, path: str, root: Path) -> bytes | None:
    """A tracked file's bytes at ``rev`` (None = workspace); None if it does not exist there."""
    if rev is None:
        full = root / path
        return full.read_bytes() if full.exists() else None
    done = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, check=False
    )
    return done.stdout if done.returncode == 0 else None


def _json_at(rev: str | None, path: str, root: Path) -> dict[str, Any] | None:
    data = read_at(rev, path, root)
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


def validation_section(base: str, root: Path) -> str:
    old, new = _json_at(base, VALIDATION, root), _json_at(None, VALIDATION, root)
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


def drift_section(base: str, root: Path) -> str:
    old, new = _json_at(base, DRIFT, root), _json_at(None, DRIFT, root)
    if new is None:
        return "_No drift result in the workspace (the monitor stage writes metrics/drift.json)._"
    keys = sorted(k for k, v in new.items() if isinstance(v, int | float | bool))
    rows = [[k, _fmt((old or {}).get(k)), _fmt(new.get(k))] for k in keys]
    text = _table(["", "base", "workspace"], rows)
    for side, rev in (("base", base), ("workspace", None)):
        detail = _json_at(rev, DRIFT_DETAIL, root) or {}
        drifted = sorted(k for k, v in (detail.get("features") or {}).items() if v.get("drift"))
        if drifted:
            text += f"\n\nDrifted in {side}: " + ", ".join(f"`{name}`" for name in drifted)
    return text + "\n\nFull report: `reports/drift.md`."


def plots_section(base: str, root: Path, out: Path) -> str:
    """Copy each PNG plot of both revisions under ``out`` and lay them side by side."""
    rows = []
    for path in PNG_PLOTS:
        cells = []
        for side, rev in (("base", base), ("workspace", None)):
            data = read_at(rev, path, root)
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
            "## Data validation\n\n" + validation_section(base, root),
            "## Drift\n\n" + drift_section(base, root),
            "## Plots\n\n" + plots_section(base, root, out),
        ]
    )
    (out / "report.md").write_text(text + "\n", encoding="utf-8")
    return text
