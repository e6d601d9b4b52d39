"""`dvc repro` from a fresh copy rebuilds the committed results byte for byte; `make` drives it."""

from __future__ import annotations

import difflib
import os
import re

import pytest
from dvc_harness import UP_TO_DATE, VENV, VENV_BIN, Origin, Repo, ran_stages

pytestmark = pytest.mark.dvc

# A fresh clone has evaluate's outputs (metrics and plots, tracked by git) but none of the cached
# outputs, so the stages up to train must run; evaluate then finds its inputs rebuilt bit for bit
# and is skipped (test_forced_evaluate_rewrites_identical_metrics_and_plots forces it).
CACHED_STAGES = ["generate", "validate", "featurize", "train"]


def test_fresh_repro_runs_the_stages_with_cached_outputs(origin: Origin) -> None:
    output = origin.first_repro.result.output
    assert ran_stages(output)[:4] == CACHED_STAGES, output
    assert (
        "Running stage 'evaluate'" in output or "Stage 'evaluate' didn't change, skipping" in output
    ), output


def test_fresh_repro_matches_committed_lock_byte_for_byte(origin: Origin) -> None:
    first = origin.first_repro
    if first.lock_after != first.committed_lock:
        diff = "".join(
            difflib.unified_diff(
                first.committed_lock.splitlines(keepends=True),
                first.lock_after.splitlines(keepends=True),
                "committed dvc.lock",
                "dvc.lock after dvc repro",
            )
        )
        pytest.fail(
            "dvc repro from an empty cache did not reproduce the committed dvc.lock (stale lock,"
            f" or a non-deterministic stage):\n{diff}"
        )


def test_fresh_repro_changes_no_tracked_metrics_or_plots(origin: Origin) -> None:
    changed = [
        line
        for line in origin.first_repro.status_after
        if not line.startswith("??") and re.match(r"^.. (\S+/)?(metrics|plots)/", line)
    ]
    assert changed == [], "dvc repro rewrote tracked metrics/plots with other bytes:\n" + "\n".join(
        changed
    )


def test_forced_evaluate_rewrites_identical_metrics_and_plots(workspace: Repo) -> None:
    result = workspace.dvc("repro", "--force", "--single-item", "evaluate")
    assert ran_stages(result.output) == ["evaluate"], result.describe()
    status = workspace.git("status", "--porcelain").stdout
    assert status == "", f"re-running evaluate changed tracked files:\n{status}"


def test_second_repro_is_up_to_date(origin: Origin) -> None:
    # How quick the no-op is belongs to benchmarks/pipeline.py, not to a timed test.
    result = origin.repo.dvc("repro")
    assert UP_TO_DATE in result.output, result.describe()
    assert ran_stages(result.output) == [], result.describe()


def test_default_synthetic_run_reaches_target_accuracy(origin: Origin) -> None:
    scores = origin.repo.read_json("metrics/evaluate.json")
    assert scores["accuracy"] >= 0.85, scores
    assert scores["promotable"] is True, scores
    assert scores["n_test"] == 200, scores


def test_make_help_lists_every_target(origin: Origin) -> None:
    makefile = origin.repo.path("Makefile").read_text(encoding="utf-8")
    phony = re.findall(r"^\.PHONY:(.*)$", makefile, re.MULTILINE)
    assert phony
    targets = " ".join(phony).split()
    result = origin.repo.run("make", "help")
    for target in targets:
        line = re.search(rf"^\s*make {re.escape(target)}\s+(\S.*)$", result.stdout, re.MULTILINE)
        assert line is not None, f"`make help` does not list {target}:\n{result.stdout}"


def test_make_repro_in_a_clone_reproduces_the_results(origin: Origin, fresh_repo: Repo) -> None:
    (fresh_repo.root / ".venv").symlink_to(VENV, target_is_directory=True)
    installed = VENV / ".installed"
    if not installed.exists():
        pytest.skip(f"{installed} missing: `make` would rebuild the shared venv")
    # A clone's files are newer than the venv's stamp; age them so make does not reinstall.
    stamp = installed.stat().st_mtime - 60
    for name in ("requirements.txt", "pyproject.toml"):
        os.utime(fresh_repo.path(name), (stamp, stamp))
    # No venv on PATH and no PYTHONPATH: the Makefile alone must make `python` the venv's.
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["DVC_SITE_CACHE_DIR"] = str(fresh_repo.root.parent / "dvc-site-cache")
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and p != str(VENV_BIN)
    )
    question = fresh_repo.run("make", "--question", ".venv/.installed", check=False, env=env)
    if question.returncode != 0:
        pytest.skip("`make setup` is not up to date: `make repro` would reinstall the shared venv")

    result = fresh_repo.run("make", "repro", env=env)
    assert f"{fresh_repo.root}/.venv/bin/dvc repro" in result.stdout, result.describe()
    assert ran_stages(result.output)[:4] == CACHED_STAGES, result.describe()
    status = fresh_repo.git("status", "--porcelain", "--untracked-files=no").stdout
    assert status == "", f"make repro changed tracked files:\n{status}"
    assert (
        fresh_repo.path("metrics/evaluate.json").read_bytes()
        == origin.repo.path("metrics/evaluate.json").read_bytes()
    )
