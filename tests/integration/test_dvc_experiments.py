"""Experiments: `dvc exp run -S`, comparing them (exp show, metrics, plots), a queued sweep."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from dvc_harness import (
    Origin,
    Repo,
    Result,
    copy_workspace,
    experiments_by_name,
    metric,
    param,
    ran_stages,
    wait_for_queue,
)

pytestmark = pytest.mark.dvc

SWEEP_DEPTHS = (4, 8, 16)


@dataclass(frozen=True)
class Experiment:
    repo: Repo
    run: Result
    name: str


@pytest.fixture(scope="module")
def experiment(origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    """One `dvc exp run -S train.random_forest.n_estimators=50` in a copy of the workspace."""
    repo = copy_workspace(origin.repo, tmp_path_factory.mktemp("experiment") / "repo")
    run = repo.dvc("exp", "run", "-S", "train.random_forest.n_estimators=50")
    names = re.findall(r"Ran experiment\(s\): (\S+)", run.output)
    assert len(names) == 1, run.describe()
    return Experiment(repo, run, names[0])


def test_exp_run_reruns_only_train_and_evaluate(experiment: Experiment) -> None:
    assert ran_stages(experiment.run.output) == ["train", "evaluate"], experiment.run.describe()
    for stage in ("generate", "validate", "featurize"):
        assert f"Stage '{stage}' didn't change, skipping" in experiment.run.output


def test_exp_show_lists_the_experiment_with_param_and_metrics(experiment: Experiment) -> None:
    data = experiments_by_name(experiment.repo)[experiment.name]
    assert param(data, "train.random_forest.n_estimators") == 50
    scores = data["metrics"]["metrics/evaluate.json"]["data"]
    assert 0.5 < scores["accuracy"] <= 1.0, scores
    assert {"f1_macro", "roc_auc", "log_loss"} <= scores.keys()
    workspace = experiment.repo.read_json("metrics/evaluate.json")
    assert scores == workspace  # the run left its results in the workspace

    rows = experiment.repo.dvc("exp", "show", "--csv").stdout.splitlines()
    assert any(row.startswith(f"{experiment.name},") for row in rows), rows


def test_metrics_diff_against_head_shows_changed_metrics(experiment: Experiment) -> None:
    diff = json.loads(experiment.repo.dvc("metrics", "diff", "HEAD", "--json").stdout)
    evaluate = diff["metrics/evaluate.json"]
    assert "accuracy" in evaluate or "log_loss" in evaluate, evaluate
    changed = {key for key, change in evaluate.items() if change.get("diff")}
    assert changed, evaluate
    assert "metrics/train.json" in diff  # cross-validation scores moved too
    table = experiment.repo.dvc("metrics", "diff", "HEAD").stdout
    assert "metrics/evaluate.json" in table and "HEAD" in table and "workspace" in table


def test_plots_diff_writes_an_html_page_for_both_revisions(
    experiment: Experiment, tmp_path: Path
) -> None:
    out = tmp_path / "plots_diff"
    experiment.repo.dvc("plots", "diff", "HEAD", "-o", out)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<html" in page.lower()
    for revision in ("HEAD", "workspace"):
        assert f"static/{revision}_plots_confusion_matrix.png" in page
        assert (out / "static" / f"{revision}_plots_roc.png").stat().st_size > 0


def test_plots_show_renders_every_plot(experiment: Experiment) -> None:
    result = experiment.repo.dvc("plots", "show")
    page_path = experiment.repo.path("dvc_plots/index.html")
    assert str(page_path) in result.output or "dvc_plots/index.html" in result.output
    page = page_path.read_text(encoding="utf-8")
    for title in ("Confusion matrix", "ROC curve", "Precision-recall curve"):
        assert title in page, title
    for image in ("confusion_matrix.png", "roc.png", "feature_importance.png"):
        assert f'<img src="static/workspace_plots_{image}">' in page, image
        assert experiment.repo.path(f"dvc_plots/static/workspace_plots_{image}").stat().st_size


def test_queued_sweep_runs_on_two_workers_and_applies(queue_workers_stopped: Repo) -> None:
    repo = queue_workers_stopped
    values = ",".join(str(d) for d in SWEEP_DEPTHS)
    queued = repo.dvc("exp", "run", "--queue", "-S", f"train.random_forest.max_depth={values}")
    names = re.findall(r"Queued experiment '([^']+)'", queued.output)
    assert len(names) == len(SWEEP_DEPTHS), queued.describe()

    started = repo.dvc("queue", "start", "-j", "2")
    assert "Started '2' new experiments task queue workers" in started.output, started.describe()
    status = wait_for_queue(repo, names)
    for name in names:
        line = next(line for line in status.splitlines() if name in line)
        assert "Success" in line, status

    shown = experiments_by_name(repo)
    depth_of = {name: param(shown[name], "train.random_forest.max_depth") for name in names}
    assert sorted(depth_of.values()) == sorted(SWEEP_DEPTHS), depth_of
    accuracy = {n: metric(shown[n], "metrics/evaluate.json", "accuracy") for n in names}
    assert all(0.5 < a <= 1.0 for a in accuracy.values()), accuracy
    table = repo.dvc("exp", "show", "--csv").stdout
    assert all(name in table for name in names), table

    # What README shows next: bring one experiment's params, metrics and outputs back.
    shallow = next(name for name, depth in depth_of.items() if depth == SWEEP_DEPTHS[0])
    repo.dvc("exp", "apply", shallow)
    assert repo.params()["train"]["random_forest"]["max_depth"] == SWEEP_DEPTHS[0]
    assert repo.read_json("metrics/evaluate.json")["accuracy"] == accuracy[shallow]
    assert repo.read_json("models/model.json")["params"]["max_depth"] == SWEEP_DEPTHS[0]
    assert "Data and pipelines are up to date." in repo.dvc("status").output
