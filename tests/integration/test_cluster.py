"""train's CV and search on a real Dask cluster (scheduler + workers from distributed's CLI).

The same `dvc exp run -S train.search=grid ...` runs locally and against the cluster in two
copies of the reproduced workspace; the model, its metadata, metrics/train.json and dvc.lock
must be byte-identical. A worker killed mid-search leaves the run to finish on the other one;
with every worker gone the stage fails with one clear message and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from dask_harness import DaskCluster, dask_cluster, run_losing_workers
from dvc_harness import DVC, Origin, Repo, Result, copy_workspace

pytestmark = pytest.mark.dvc

# 4 candidates x 5 folds = 20 fits, a few seconds of work on two workers.
GRID = (
    "-S",
    "train.search=grid",
    "-S",
    "+train.search_space.n_estimators=[10,30]",  # "+": a key new to the empty search_space
    "-S",
    "+train.search_space.max_depth=[4,8]",
)
COMPARED = ("models/model.joblib", "models/model.json", "metrics/train.json", "dvc.lock")


@dataclass(frozen=True)
class Run:
    result: Result
    files: dict[str, bytes]


def exp_run(repo: Repo, env: dict[str, str] | None = None, check: bool = True) -> Run:
    result = repo.run(DVC, "exp", "run", *GRID, env=env, check=check, timeout=300)
    files = {name: repo.path(name).read_bytes() for name in COMPARED if repo.path(name).exists()}
    return Run(result, files)


@pytest.fixture(scope="module")
def local_run(origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Run:
    repo = copy_workspace(origin.repo, tmp_path_factory.mktemp("local") / "repo")
    run = exp_run(repo)
    assert "fits run in this process (DASK_SCHEDULER_ADDRESS is not set)" in run.result.output
    return run


def assert_identical(run: Run, local: Run) -> None:
    for name in COMPARED:
        assert run.files[name] == local.files[name], f"{name} differs from the local run"


def test_grid_search_on_cluster_is_byte_identical_to_local(
    local_run: Run, origin: Origin, tmp_path: Path
) -> None:
    repo = copy_workspace(origin.repo, tmp_path / "repo")
    with dask_cluster(repo, tmp_path / "dask") as cluster:
        run = exp_run(repo, env=cluster.env())
        worker_logs = cluster.log("worker-0") + cluster.log("worker-1")
    assert f"fits run on the Dask cluster at {cluster.address}: 2 worker(s), 2 thread(s)" in (
        run.result.output
    ), run.result.describe()
    assert "cross-validating 20 fit(s) on 800 rows: 2 at a time" in run.result.output
    assert "Run out-of-band function 'code_digest'" in worker_logs  # both workers were used
    assert_identical(run, local_run)


def test_worker_killed_mid_search_run_completes_on_the_other(
    local_run: Run, origin: Origin, tmp_path: Path
) -> None:
    repo = copy_workspace(origin.repo, tmp_path / "repo")
    with dask_cluster(repo, tmp_path / "dask") as cluster:
        code, output = run_losing_workers(cluster, repo.root, [str(DVC), "exp", "run", *GRID], 0)
        removed = "Remove worker" in cluster.log("scheduler")
    assert code == 0, output
    assert removed, cluster.log("scheduler")
    files = {name: repo.path(name).read_bytes() for name in COMPARED}
    assert files == local_run.files, "the run finished on one worker differs from the local run"


def test_every_worker_lost_fails_clearly_and_writes_nothing(origin: Origin, tmp_path: Path) -> None:
    repo = copy_workspace(origin.repo, tmp_path / "repo")
    before = {name: repo.path(name).read_bytes() for name in COMPARED}
    with dask_cluster(repo, tmp_path / "dask", no_workers_timeout="3s") as cluster:
        code, output = run_losing_workers(cluster, repo.root, [str(DVC), "exp", "run", *GRID], 0, 1)
    assert code != 0, output
    assert f"error: the Dask cluster at {cluster.address} failed during the fits" in output
    assert "nothing was written" in output and "Traceback" not in output, output
    # DVC removes a stage's outputs before running it; train writes none of its own.
    for name in COMPARED:
        path = repo.path(name)
        assert not path.exists() or path.read_bytes() == before[name], f"{name} was written"
    assert repo.path("dvc.lock").read_bytes() == before["dvc.lock"]


def test_unreachable_scheduler_is_a_clear_error(origin: Origin, tmp_path: Path) -> None:
    repo = copy_workspace(origin.repo, tmp_path / "repo")
    env = {**DaskCluster(repo, tmp_path).env(), "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9"}
    result = repo.run(DVC, "exp", "run", *GRID, env=env, check=False, timeout=300)
    assert result.returncode != 0
    assert "error: DASK_SCHEDULER_ADDRESS=tcp://127.0.0.1:9: no Dask scheduler answered" in (
        result.output
    ), result.describe()
    assert "Fix: start one (make cluster) or unset DASK_SCHEDULER_ADDRESS" in result.output
    assert "Traceback" not in result.output
