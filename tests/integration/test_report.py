"""`mlrepo report` (what `make report` and CI run) on a real git repository with real DVC."""

from __future__ import annotations

import subprocess

import pytest
from dvc_harness import VENV_BIN, Repo

pytestmark = pytest.mark.dvc


def test_report_compares_workspace_with_base(workspace: Repo) -> None:
    workspace.set_params({"train.random_forest.n_estimators": 20})
    workspace.dvc("repro", "train", "evaluate")

    workspace.run(VENV_BIN / "mlrepo", "report", "--base", "main", "--out", "report")

    text = workspace.path("report/report.md").read_text("utf-8")
    assert "workspace vs `main`" in text
    params_part = text.split("## Params")[1].split("## Metrics")[0]
    assert "train.random_forest.n_estimators" in params_part and "20" in params_part
    metrics_part = text.split("## Metrics")[1].split("## Data validation")[0]
    assert "metrics/evaluate.json" in metrics_part and "accuracy" in metrics_part
    assert "| rows_out | 1000 | 1000 |" in text
    for side in ("base", "workspace"):
        for name in ("confusion_matrix.png", "roc.png", "feature_importance.png"):
            image = workspace.path(f"report/{side}/{name}")
            assert image.read_bytes().startswith(b"\x89PNG"), image
            assert f"]({side}/{name})" in text
    # the base's plots are the committed ones, the workspace's the new ones
    committed = subprocess.run(
        ["git", "show", "main:plots/roc.png"], cwd=workspace.root, capture_output=True, check=True
    ).stdout
    assert workspace.path("report/base/roc.png").read_bytes() == committed
    assert (
        workspace.path("report/workspace/roc.png").read_bytes()
        == workspace.path("plots/roc.png").read_bytes()
    )


def test_report_without_changes_says_so(workspace: Repo) -> None:
    workspace.run(VENV_BIN / "mlrepo", "report", "--base", "main", "--out", "report")
    text = workspace.path("report/report.md").read_text("utf-8")
    assert "_No params changed._" in text
    assert "_No metrics changed._" in text


def test_report_unknown_base_is_a_clear_error(workspace: Repo) -> None:
    result = workspace.run(VENV_BIN / "mlrepo", "report", "--base", "no-such-branch", check=False)
    assert result.returncode == 2
    assert "base revision 'no-such-branch' not found" in result.stderr
    assert "fetch-depth" in result.stderr
    assert "Traceback" not in result.output
