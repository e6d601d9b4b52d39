"""Fixtures: one reproduced copy of the project per session, and cheap copies of it per test.

``origin`` is made once from the project's git-tracked files and reproduced from an empty DVC
cache; tests that change state work in a copy: ``fresh_repo`` (a ``git clone``: tracked files
only, no outputs, empty cache) or ``workspace`` (the reproduced workspace with its outputs and
DVC cache). Nothing runs in the project's own working tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dvc_harness import (
    DVC,
    PROJECT,
    FirstRepro,
    Origin,
    Repo,
    configure_git,
    copy_tracked_files,
    copy_workspace,
    git_clone,
    stop_queue_workers,
)


@pytest.fixture(scope="session")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Origin:
    if not DVC.exists():
        pytest.fail(f"{DVC} not found: run the tests with the project venv's python")
    root = tmp_path_factory.mktemp("origin")
    copy_tracked_files(PROJECT, root)
    repo = Repo(root)
    repo.git("init", "-q", "-b", "main")
    configure_git(repo)
    repo.commit("The project's tracked files")
    assert not (root / ".dvc" / "cache").exists(), "the copy must start with an empty DVC cache"

    committed_lock = repo.git("show", "HEAD:dvc.lock").stdout
    result = repo.dvc("repro", check=False)
    if result.returncode != 0:
        pytest.fail(f"dvc repro failed in a fresh copy of the project:\n{result.describe()}")
    status = repo.git("status", "--porcelain").stdout.splitlines()
    first = FirstRepro(result, committed_lock, repo.path("dvc.lock").read_text("utf-8"), status)
    if status:
        # Keep copies clean even if the committed dvc.lock is stale (its own test reports that).
        repo.commit("Reproduced")
    return Origin(repo, first)


@pytest.fixture
def fresh_repo(origin: Origin, tmp_path: Path) -> Repo:
    """A git clone of the reproduced project: tracked files only, no outputs, empty cache."""
    return git_clone(origin.repo, tmp_path / "repo")


@pytest.fixture
def workspace(origin: Origin, tmp_path: Path) -> Repo:
    """A copy of the reproduced workspace, outputs and DVC cache included."""
    return copy_workspace(origin.repo, tmp_path / "repo")


@pytest.fixture
def queue_workers_stopped(workspace: Repo) -> Iterator[Repo]:
    """``workspace``, with any experiment-queue worker stopped when the test ends."""
    yield workspace
    stop_queue_workers(workspace)
