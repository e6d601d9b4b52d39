"""A bad value or a typo in params.yaml stops `dvc repro` at the first stage, with one message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from dvc_harness import Repo, ran_stages

pytestmark = pytest.mark.dvc


@dataclass(frozen=True)
class BadParam:
    updates: dict[str, Any]
    expected: tuple[str, ...]  # the dotted key and the value given, as the message shows them
    remove: tuple[str, ...] = field(default=())


CASES = {
    "unknown model name": BadParam({"train.model": "catboost"}, ("train.model", "'catboost'")),
    "n_estimators zero": BadParam(
        {"train.random_forest.n_estimators": 0},
        ("train.random_forest.n_estimators", "(given: 0)"),
    ),
    "test_size above one": BadParam(
        {"featurize.test_size": 1.5}, ("featurize.test_size", "(given: 1.5)")
    ),
    # For a misspelled key the given "value" is the key itself; the message suggests the real one.
    "misspelled key": BadParam(
        {"train.random_forest.n_estimator": 50},
        ("train.random_forest.n_estimator: unknown key", "'train.random_forest.n_estimators'"),
        remove=("train.random_forest.n_estimators",),
    ),
    "wrong type": BadParam(
        {"train.random_forest.max_depth": "deep"},
        ("train.random_forest.max_depth", "'deep'", "integer"),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_params_stop_generate_before_it_writes(fresh_repo: Repo, case: BadParam) -> None:
    fresh_repo.set_params(case.updates, remove=case.remove)
    result = fresh_repo.dvc("repro", check=False)
    assert result.returncode != 0, result.describe()
    for fragment in case.expected:
        assert fragment in result.output, (fragment, result.describe())
    assert "params.yaml has 1 problem(s)" in result.output, result.describe()
    assert "Traceback" not in result.output, result.describe()
    assert "failed to reproduce 'generate'" in result.output, result.describe()
    assert "exited with 2" in result.output, result.describe()  # a user error, not a crash
    assert ran_stages(result.output) == ["generate"], result.describe()
    assert not fresh_repo.path("data/raw.parquet").exists()
    assert not list(fresh_repo.path("data").glob(".*.tmp")), "a temporary file was left behind"


@pytest.mark.parametrize("how", ["repro", "exp run"])
def test_an_unknown_model_after_a_repro_names_train_model_not_a_missing_dvc_param(
    workspace: Repo, how: str
) -> None:
    # generate is up to date, so train is the first stage to run: DVC must get that far rather
    # than fail on dvc.yaml's params with "Parameters 'train.xgboostt' are missing".
    if how == "repro":
        workspace.set_params({"train.model": "xgboostt"})
        result = workspace.dvc("repro", check=False)
    else:
        result = workspace.dvc("exp", "run", "-S", "train.model=xgboostt", check=False)
    assert result.returncode != 0, result.describe()
    assert "are missing from" not in result.output, result.describe()
    for fragment in ("train.model: must be one of", "'random_forest'", "'lightgbm'", "'xgboostt'"):
        assert fragment in result.output, (fragment, result.describe())
    assert "Traceback" not in result.output, result.describe()
    assert "exited with 2" in result.output, result.describe()
    assert ran_stages(result.output) == ["train"], result.describe()
