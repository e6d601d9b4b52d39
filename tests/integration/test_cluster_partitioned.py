"""The whole train.distributed path through DVC: generate, validate and featurize partition by
partition, then xgboost.dask, on a real cluster (scheduler and two workers from distributed's CLI).

The same params run twice in copies of the reproduced workspace: validate and featurize with their
partition tasks on this machine's threads (no scheduler), and the whole pipeline on the cluster.
Every output of generate, validate and featurize must be byte-identical, the partitions must
reach train as row groups, and the model must export and evaluate as any other.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dask_harness import dask_cluster, run_losing_workers
from dvc_harness import DVC, Origin, Repo, copy_workspace

pytestmark = pytest.mark.dvc

ROWS, PARTITION = 6000, 1000
PARAMS = {
    "generate.n_samples": ROWS,
    "generate.partition_rows": PARTITION,
    "train.model": "xgboost",
    "train.distributed": True,
    "train.cv_folds": 2,
    "train.cv_max_rows": 2000,
    "train.xgboost.n_estimators": 20,
}
COMPARED = (
    "data/raw.parquet",
    "data/validated.parquet",
    "data/schema.json",
    "metrics/validation.json",
    "data/split/train.parquet",
    "data/split/test.parquet",
    "models/preprocessor.joblib",
)


def workspace(origin: Origin, root: Path) -> Repo:
    repo = copy_workspace(origin.repo, root)
    repo.set_params(PARAMS)
    return repo


def test_partitioned_stages_are_byte_identical_locally_and_on_the_cluster(
    origin: Origin, tmp_path: Path
) -> None:
    local = workspace(origin, tmp_path / "local")
    result = local.run(DVC, "repro", "featurize", timeout=300)
    assert "validate's partition tasks run in this process" in result.output, result.describe()
    assert "featurize's partition tasks run in this process" in result.output
    files = {name: local.path(name).read_bytes() for name in COMPARED}

    remote = workspace(origin, tmp_path / "remote")
    with dask_cluster(remote, tmp_path / "dask") as cluster:
        result = remote.run(DVC, "repro", env=cluster.env(), timeout=600)
    for stage in ("validate", "featurize"):
        assert f"{stage}'s partition tasks run on the Dask cluster at {cluster.address}" in (
            result.output
        ), result.describe()
    for name in COMPARED:
        assert remote.path(name).read_bytes() == files[name], f"{name} differs from the local run"

    groups = [pq.ParquetFile(remote.path(n)).num_row_groups for n in COMPARED if "parquet" in n]
    assert groups == [ROWS // PARTITION] * 4, "each stage writes one row group per partition"
    assert (
        f"final fit with xgboost.dask on {ROWS * 4 // 5} rows in {ROWS // PARTITION} partition(s)"
    ) in result.output
    assert remote.read_json("metrics/export.json")["passed"] is True
    assert remote.read_json("metrics/evaluate.json")["accuracy"] > 0.8
    validation = remote.read_json("metrics/validation.json")
    assert validation["passed"] and validation["rows_out"] == ROWS


def test_a_bad_table_fails_with_the_whole_table_message_and_writes_nothing(
    origin: Origin, tmp_path: Path
) -> None:
    repo = workspace(origin, tmp_path / "repo")
    source = repo.path("data/external/user.csv")
    rows = ["a,b,label"] + [
        f"{i % 7},{i % 3 if i != 1234 else 'oops'},{i % 2}" for i in range(3000)
    ]
    source.write_text("\n".join(rows) + "\n")
    repo.set_params(
        {
            "generate.source": "file",
            "generate.path": "data/external/user.csv",
            "generate.target": "label",
            "generate.partition_rows": 500,
        }
    )
    before = repo.path("data/validated.parquet").read_bytes()
    result = repo.run(DVC, "repro", "validate", check=False, timeout=300)
    assert result.returncode != 0
    assert "data/external/user.csv: column 'b': a numeric column with 1 non-numeric value(s)" in (
        result.output
    ), result.describe()
    assert "e.g. rows 1235; values 'oops'" in result.output
    assert "Traceback" not in result.output
    assert pq.ParquetFile(repo.path("data/raw.parquet")).num_row_groups == 6
    validated = repo.path("data/validated.parquet")
    assert not validated.exists() or validated.read_bytes() == before


def test_a_worker_killed_mid_validate_leaves_the_tasks_to_the_other(
    origin: Origin, tmp_path: Path
) -> None:
    """Partition tasks are pure: the scheduler runs a lost worker's tasks again on the other,
    and the outputs are the local run's bytes."""
    params = {**PARAMS, "generate.n_samples": 300_000, "generate.partition_rows": 10_000}
    local = copy_workspace(origin.repo, tmp_path / "local")
    local.set_params(params)
    local.run(DVC, "repro", "validate", timeout=300)
    remote = copy_workspace(origin.repo, tmp_path / "remote")
    remote.set_params(params)
    remote.run(DVC, "repro", "generate", timeout=300)
    with dask_cluster(remote, tmp_path / "dask") as cluster:
        code, output = run_losing_workers(cluster, remote.root, [str(DVC), "repro", "validate"], 0)
        removed = "Remove worker" in cluster.log("scheduler")
    assert code == 0, output
    assert removed, cluster.log("scheduler")
    for name in ("data/validated.parquet", "data/schema.json", "metrics/validation.json"):
        assert remote.path(name).read_bytes() == local.path(name).read_bytes(), name


def test_every_worker_lost_mid_featurize_fails_clearly_and_writes_nothing(
    origin: Origin, tmp_path: Path
) -> None:
    params = {**PARAMS, "generate.n_samples": 300_000, "generate.partition_rows": 10_000}
    repo = copy_workspace(origin.repo, tmp_path / "repo")
    repo.set_params(params)
    repo.run(DVC, "repro", "validate", timeout=300)
    with dask_cluster(repo, tmp_path / "dask", no_workers_timeout="3s") as cluster:
        featurize = [str(DVC), "repro", "featurize"]
        code, output = run_losing_workers(cluster, repo.root, featurize, 0, 1)
    assert code != 0, output
    assert (
        f"error: the Dask cluster at {cluster.address} failed during the featurize's partition"
        " tasks"
    ) in output
    assert "nothing was written" in output and "Traceback" not in output, output
    split = repo.path("data/split")
    assert not list(split.glob("*.parquet")) and not list(split.glob(".*.tmp")), output
