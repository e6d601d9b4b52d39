"""A `dvc exp run --queue` sweep whose train stages send their fits to a real Dask cluster.

`dvc queue start` runs the experiments in queue workers that inherit its environment, so with
DASK_SCHEDULER_ADDRESS exported every queued train connects to the cluster (README "Scaling
out"). Two experiments at a time, both on the same scheduler and two workers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dask_harness import dask_cluster
from dvc_harness import (
    DVC,
    Origin,
    copy_workspace,
    experiments_by_name,
    param,
    stop_queue_workers,
    wait_for_queue,
)

pytestmark = pytest.mark.dvc


def test_queued_sweep_trains_on_the_cluster(origin: Origin, tmp_path: Path) -> None:
    repo = copy_workspace(origin.repo, tmp_path / "repo")
    with dask_cluster(repo, tmp_path / "dask") as cluster:
        env = cluster.env()
        try:
            queued = repo.run(
                DVC, "exp", "run", "--queue", "-S", "train.search=grid",
                "-S", "+train.search_space.max_depth=[4,8]",
                "-S", "train.random_forest.n_estimators=10,30", env=env,
            )  # fmt: skip
            names = re.findall(r"Queued experiment '([^']+)'", queued.output)
            assert len(names) == 2, queued.describe()
            repo.run(DVC, "queue", "start", "-j", "2", env=env)
            status = wait_for_queue(repo, names)
            logs = {n: repo.dvc("queue", "logs", n).output for n in names}
        finally:
            stop_queue_workers(repo)
        digests = (cluster.log("worker-0") + cluster.log("worker-1")).count("'code_digest'")
    for name in names:
        line = next(line for line in status.splitlines() if name in line)
        assert "Success" in line, f"{status}\n{logs[name]}"
        assert f"fits run on the Dask cluster at {cluster.address}" in logs[name], logs[name]
        assert "cross-validating 10 fit(s)" in logs[name], logs[name]
    assert digests >= 4, "each experiment's train checks both workers before sending fits"
    shown = experiments_by_name(repo)
    assert sorted(param(shown[n], "train.random_forest.n_estimators") for n in names) == [10, 30]
    for name in names:
        best = shown[name]["metrics"]["metrics/train.json"]["data"]["best_params"]
        assert best["max_depth"] in (4, 8), best
