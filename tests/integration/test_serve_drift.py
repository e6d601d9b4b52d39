"""The drift gauges of a real server process: the monitor stage's verdict for the served
model's revision (metrics/drift.json, believed only with the md5 dvc.lock records), NaN when
unknown, and updated when a reload brings another revision."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from serve_harness import Project, Server, build_project

from mlrepo.io import file_md5

ADMIN = {"X-API-Key": "admin-secret"}
ENV = {"MLREPO_PREDICTION_LOG": "off", "MLREPO_ADMIN_KEY": "admin-secret"}
SHARE = "mlrepo_model_drift_share"
VERDICT = "mlrepo_model_dataset_drift"


def record_drift(root: Path, drift: dict[str, Any], in_lock: bool = True) -> str:
    """Write metrics/drift.json (and its md5 in dvc.lock, as `dvc repro monitor` would) and
    commit both; the new commit's sha."""
    path = root / "metrics" / "drift.json"
    path.write_text(json.dumps(drift, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    outs = [{"path": "metrics/drift.json", "md5": file_md5(path)}] if in_lock else []
    lock["stages"]["monitor"] = {"cmd": "tests", "outs": outs}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock), encoding="utf-8")
    git(root, "add", "metrics/drift.json", "dvc.lock")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "-m", "drift")
    return git(root, "rev-parse", "HEAD")


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def drift(share: float, dataset: int) -> dict[str, Any]:
    return {"dataset_drift": dataset, "n_drifted": 3, "n_features": 8, "share_drifted": share}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A served project that is a DVC project too (the registry reads revisions of one)."""
    project = build_project(tmp_path / "drift")
    dvc = [sys.executable, "-m", "dvc", "init", "-q"]
    subprocess.run(dvc, cwd=project.root, check=True, capture_output=True)
    git(project.root, "add", ".dvc", ".dvcignore")
    git(project.root, "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "dvc")
    return project


@pytest.fixture
def server(project: Project) -> Iterator[Server]:
    record_drift(project.root, drift(0.375, 1))
    with Server(project.root, ENV, "--model", "main") as server:
        yield server


def committed_drift(root: Path, rev: str) -> dict[str, Any]:
    figures: dict[str, Any] = json.loads(git(root, "show", f"{rev}:metrics/drift.json"))
    return figures


def test_the_gauges_show_the_revisions_drift_and_follow_a_reload(
    server: Server, project: Project
) -> None:
    served = server.client.get("/model").json()["git_rev"]
    figures = committed_drift(project.root, served)
    assert server.metric(SHARE) == figures["share_drifted"] == 0.375
    assert server.metric(VERDICT) == figures["dataset_drift"] == 1

    # A new monitor run on the branch: a reload resolves `main` again and shows its figures.
    new = record_drift(project.root, drift(0.125, 0))
    assert server.client.post("/admin/reload", headers=ADMIN).status_code == 200
    assert server.client.get("/model").json()["git_rev"] == new
    assert server.metric(SHARE) == committed_drift(project.root, new)["share_drifted"] == 0.125
    assert server.metric(VERDICT) == 0

    # A figure edited by hand after the monitor ran (md5 not dvc.lock's) is not believed.
    path = project.root / "metrics" / "drift.json"
    path.write_text(json.dumps(drift(0.0, 0)), encoding="utf-8")
    git(project.root, "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qam", "x")
    assert server.client.post("/admin/reload", headers=ADMIN).status_code == 200
    assert math.isnan(server.metric(SHARE))
    assert math.isnan(server.metric(VERDICT))


@pytest.mark.parametrize(
    "case", ["absent", "not_in_lock", "bad_values"], ids=lambda case: str(case)
)
def test_unknown_drift_is_nan_never_an_error(project: Project, case: str) -> None:
    if case == "not_in_lock":
        record_drift(project.root, drift(0.5, 1), in_lock=False)
    elif case == "bad_values":
        record_drift(project.root, {"dataset_drift": "yes", "share_drifted": 7})
    server = Server(project.root, ENV, "--model", "main")
    try:
        assert math.isnan(server.metric(SHARE))
        assert math.isnan(server.metric(VERDICT))
        assert server.ready()["http_status"] == 200
    finally:
        server.stop()
