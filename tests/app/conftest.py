"""Fixtures of the app's tests: the served project (``app_harness``) and the app's environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app_harness import Served, prepare
from serve_harness import Server, build_project


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    project = build_project(tmp_path_factory.mktemp("app"))
    accuracy = prepare(project)
    url = f"sqlite:///{project.root / 'predictions.db'}"
    with Server(project.root, {"DATABASE_URL": url}, "--model", "workspace") as server:
        yield Served(project, server, url, accuracy)


@pytest.fixture
def app_env(served: Served, monkeypatch: pytest.MonkeyPatch) -> Served:
    for name, value in served.env().items():
        monkeypatch.setenv(name, value)
    return served
