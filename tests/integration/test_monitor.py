"""Drift monitoring under real DVC: the batches and monitor stages of `dvc repro`, and
`mlrepo drift` against a model reference resolved through the registry.

Out of the box the monitor stage checks the shifted batch and records drift without failing;
pointed at the same-distribution batch (one param), only the monitor stage re-runs and records
none. Everything it writes is byte-stable.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import pytest
from dvc_harness import Origin, Repo, ran_stages

from mlrepo.cli import main

pytestmark = pytest.mark.dvc

SAME = "data/batches/same.parquet"
SHIFTED = "data/batches/shifted.parquet"
OUTPUTS = ("metrics/drift.json", "reports/drift.json", "reports/drift.md")


def drift_cli(repo: Repo, *args: str) -> tuple[int, str, str]:
    """``mlrepo drift ARGS`` in this process against ``repo``, paths relative to its root."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["--params", str(repo.path("params.yaml")), "drift", "-C", str(repo.root), *args]
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_the_pipeline_flags_the_shifted_batch_out_of_the_box(origin: Origin) -> None:
    repo = origin.repo
    output = origin.first_repro.result.output
    # batches' outputs are cached, so a fresh clone rebuilds them; monitor's are git-tracked
    # (cache: false) and skipped when the committed ones are reproduced exactly.
    assert "Running stage 'batches'" in output
    assert (
        "Running stage 'monitor'" in output or "Stage 'monitor' didn't change, skipping" in output
    )
    metrics = repo.read_json("metrics/drift.json")
    assert metrics["dataset_drift"] == 1 and metrics["drift"] == 1
    assert metrics["rows"] == {"current": 200, "reference": 800}
    result = repo.read_json("reports/drift.json")
    assert result["sources"]["current"] == SHIFTED
    drifted = sorted(name for name, column in result["features"].items() if column["drift"])
    assert {f"num_{i:02d}" for i in range(10)} | {"cat_0", "cat_1"} <= set(drifted)
    assert result["features"]["cat_0"]["new_categories"] == ["unseen"]
    plots = sorted(p.stem for p in repo.path("reports/drift_plots").glob("*.png"))
    expected = drifted + (["prediction"] if result["prediction"]["drift"] else [])
    assert plots == sorted(expected)
    report = repo.path("reports/drift.md").read_text("utf-8")
    assert "**Dataset drift: detected**" in report
    assert "![num_00: reference vs current](drift_plots/num_00.png)" in report


def test_the_same_batch_is_not_flagged_and_only_monitor_reruns(workspace: Repo) -> None:
    workspace.set_params({"monitor.current": SAME})
    result = workspace.dvc("repro")
    assert "Running stage 'monitor'" in result.output
    for stage in ("generate", "train", "evaluate", "batches"):
        assert f"Running stage '{stage}'" not in result.output, result.output
    metrics = workspace.read_json("metrics/drift.json")
    assert metrics["dataset_drift"] == 0 and metrics["drift"] == 0
    assert metrics["n_drifted"] <= 2  # chance alarms at p < 0.05, far below drift_share
    result = workspace.read_json("reports/drift.json")
    assert result["prediction"]["drift"] == 0
    drifted = sorted(name for name, column in result["features"].items() if column["drift"])
    plots = sorted(p.stem for p in workspace.path("reports/drift_plots").glob("*.png"))
    assert plots == drifted  # the shifted run's plots are gone
    diff = json.loads(workspace.dvc("metrics", "diff", "--json").stdout)
    assert diff["metrics/drift.json"]["dataset_drift"] == {"old": 1, "new": 0, "diff": -1}


def test_forced_batches_and_monitor_rewrite_identical_bytes(workspace: Repo) -> None:
    lock = workspace.path("dvc.lock").read_bytes()
    before = {path: workspace.path(path).read_bytes() for path in OUTPUTS}
    workspace.dvc("repro", "--force", "--single-item", "batches")
    workspace.dvc("repro", "--force", "--single-item", "monitor")
    assert workspace.path("dvc.lock").read_bytes() == lock
    assert {path: workspace.path(path).read_bytes() for path in OUTPUTS} == before
    assert workspace.git("status", "--porcelain").stdout == ""


def test_drift_against_a_model_reference_uses_its_training_data_and_model(
    workspace: Repo,
) -> None:
    # HEAD is a git revision: the model and data/split/train.parquet come from the DVC cache,
    # each checked against that commit's dvc.lock.
    code, out, err = drift_cli(
        workspace, "--reference", "HEAD", "--current", str(workspace.path(SHIFTED)), "--json"
    )
    assert code == 3, err
    result = json.loads(out)
    assert result["dataset_drift"] == 1 and result["rows"]["reference"] == 800
    assert result["sources"]["reference"].startswith("data/split/train.parquet of HEAD")
    assert result["prediction"] is not None and "model" in result["sources"]
    stage_result = workspace.read_json("reports/drift.json")
    assert result["features"] == stage_result["features"]  # the stage and the CLI agree
    assert result["prediction"] == stage_result["prediction"]

    code, out, err = drift_cli(
        workspace, "--reference", "HEAD", "--current", str(workspace.path(SAME))
    )
    assert code == 0, err
    assert "dataset drift: no" in out and "prediction drift: no" in out

    code, _, err = drift_cli(
        workspace, "--reference", "HEAD", "--model", "HEAD", "--current", str(workspace.path(SAME))
    )
    assert code == 2 and "--model is for a table reference" in err


def test_a_tiny_batch_stops_the_monitor_stage_or_is_marked_with_warn(workspace: Repo) -> None:
    workspace.set_params({"monitor.batch.n_samples": 5})
    failed = workspace.dvc("repro", check=False)
    assert failed.returncode != 0
    assert f"{SHIFTED}: 5 row(s), fewer than monitor.min_current_rows (30)" in failed.output, (
        failed.describe()
    )
    assert "Traceback" not in failed.output
    workspace.set_params({"monitor.small_current": "warn"})
    warned = workspace.dvc("repro")
    assert "too few to judge drift, this verdict is unreliable" in warned.output
    assert workspace.read_json("metrics/drift.json")["too_few_rows"] == 1
    assert "**Warning: only 5 current row(s)" in workspace.path("reports/drift.md").read_text()


def test_the_correction_is_recorded_and_changes_only_the_monitor_stage(workspace: Repo) -> None:
    result = workspace.read_json("reports/drift.json")
    assert result["correction"] == "benjamini_hochberg"  # params.yaml's setting
    assert result["features"]["num_00"]["adjusted_score"] is not None
    workspace.set_params({"monitor.correction": "none", "monitor.current": SAME})
    rerun = workspace.dvc("repro")
    assert ran_stages(rerun.output) == [] and "Running stage 'monitor'" in rerun.output
    plain = workspace.read_json("reports/drift.json")
    assert plain["correction"] == "none"
    assert plain["features"]["num_00"]["adjusted_score"] is None
    assert plain["expected_false_alarms"] == pytest.approx(22 * 0.05)
    assert "without correction: about 1.1 feature(s) drift by chance alone" in (
        workspace.path("reports/drift.md").read_text()
    )
