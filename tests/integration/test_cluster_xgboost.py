"""train.distributed: validate, featurize and xgboost.dask on a table larger than a worker's memory.

A real scheduler and four ``dask worker --memory-limit`` processes (the nanny restarts a worker
that passes 95 % of it) run validate and featurize partition by partition, then train, on a raw
table of row groups whose pandas size is above that limit.
Four, not two: a worker idles at ~300 MB (Python, pandas, scikit-learn, XGBoost) and holds
about 0.3 times its share of the table during the fit, so with two workers the split would
have to pass ~1 GB before one worker's limit could be below it; four keep the test near 1 minute.
Each stage must finish with no worker restarted, each stage's own process must stay below the
table's size (none loads it), and the model train writes must export to ONNX and score through
batch prediction like any other. The same workers, asked to load the table in one
process, are killed: the fit completed where a single-process load does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from dask_harness import dask_cluster
from dvc_harness import PROJECT, Repo, base_env

from mlrepo.bundle import ModelBundle
from mlrepo.io import read_json
from mlrepo.predict import predict_file
from mlrepo.prediction.core import from_bundle

pytestmark = pytest.mark.dvc

ROWS = 5_000_000
TRAIN_ROWS = ROWS * 4 // 5  # featurize.test_size 0.2
ROW_GROUP = 250_000
MEMORY_LIMIT = 700 * 2**20
WORKERS = 4
STAGES = {
    "validate": (
        "--data", "data/raw.parquet", "--out", "data/validated.parquet",
        "--schema", "data/schema.json", "--report", "metrics/validation.json",
    ),
    "featurize": (
        "--data", "data/validated.parquet", "--schema", "data/schema.json",
        "--train", "data/split/train.parquet", "--test", "data/split/test.parquet",
        "--preprocessor", "models/preprocessor.joblib",
    ),
    "train": (
        "--train", "data/split/train.parquet", "--schema", "data/schema.json",
        "--preprocessor", "models/preprocessor.joblib", "--model", "models/model.joblib",
        "--meta", "models/model.json", "--metrics", "metrics/train.json",
    ),
}  # fmt: skip
# The limit is the one the nanny enforces (a worker past 95 % of it is restarted). Spilling and
# pausing are off: xgboost holds its matrices outside the memory Dask manages, and a paused
# worker would stall the fit. Arrow's system allocator returns freed buffers at once (its default
# pool keeps ~150 MB). A task whose worker dies is not retried, so the single-process load fails
# at once.
WORKER_MEMORY = {
    "DASK_DISTRIBUTED__WORKER__MEMORY__TARGET": "False",
    "DASK_DISTRIBUTED__WORKER__MEMORY__SPILL": "False",
    "DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE": "False",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
}
PARAMS = {
    "train": {
        "model": "xgboost",
        "distributed": True,
        "cv_folds": 2,
        "cv_max_rows": 2000,
        "xgboost": {"n_estimators": 10, "max_depth": 4},
    }
}


@dataclass(frozen=True)
class Inputs:
    root: Path
    table_bytes: int  # the table as one pandas frame, as read_table would hold it


def rows(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """``n`` rows of 20 numeric features and a categorical one; the binary target is a noisy
    linear function of five numeric columns, the categorical bins a sixth."""
    x = rng.standard_normal((n, 20))
    frame = pd.DataFrame(x, columns=[f"num_{i:02d}" for i in range(20)])
    logit = x[:, :5] @ np.array([1.5, -1.0, 0.8, 0.6, -0.4]) + rng.normal(scale=0.5, size=n)
    frame["cat_0"] = np.asarray(list("abcde"))[np.digitize(x[:, 5], [-1, -0.3, 0.3, 1])]
    frame["target"] = (logit > 0).astype(np.int64)
    return frame


def build_inputs(root: Path) -> Inputs:
    """validate's input: a raw table of ``ROWS`` rows written one row group at a time (this
    process never holds it either)."""
    rng = np.random.default_rng(11)
    (root / "data").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    table_bytes = 0
    path = root / "data" / "raw.parquet"
    writer = None
    for _ in range(ROWS // ROW_GROUP):
        group = rows(rng, ROW_GROUP)
        table_bytes += int(group.memory_usage(deep=True).sum())
        batch = pa.Table.from_pandas(group, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, batch.schema, compression="none")
        writer.write_table(batch)
    assert writer is not None
    writer.close()
    return Inputs(root, table_bytes)


def run_stage(root: Path, stage: str, env: dict[str, str]) -> tuple[int, str, int]:
    """A stage's process: exit code, output, and its peak resident memory in bytes."""
    log = root / f"{stage}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"mlrepo.stages.{stage}", *STAGES[stage]], cwd=root, env=env,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, log.read_text(errors="replace"), usage.ru_maxrss * 1024


def test_the_distributed_path_runs_on_a_table_larger_than_each_worker_memory(
    tmp_path: Path,
) -> None:
    inputs = build_inputs(tmp_path / "work")
    root = inputs.root
    assert inputs.table_bytes > MEMORY_LIMIT, "the table must not fit in one worker"
    env_repo = Repo(PROJECT)  # the cluster and the stages import this checkout's src
    peaks, outputs = {}, {}
    with dask_cluster(
        env_repo,
        tmp_path / "dask",
        n_workers=WORKERS,
        worker_options=("--memory-limit", str(MEMORY_LIMIT)),
        config=WORKER_MEMORY,
    ) as cluster:
        for stage in STAGES:
            code, outputs[stage], peaks[stage] = run_stage(root, stage, cluster.env())
            assert code == 0, outputs[stage]
            assert "Remove worker" not in cluster.log("scheduler"), f"a worker died in {stage}"

        from distributed import Client
        from distributed.scheduler import KilledWorker

        with Client(cluster.address, timeout=30) as client:
            load = client.submit(pd.read_parquet, str(root / "data/split/train.parquet"))
            with pytest.raises(KilledWorker):
                load.result(timeout=120)
        restarted = "".join(cluster.log(f"worker-{n}") for n in range(WORKERS))
    assert "exceeded 95% memory budget" in restarted

    for stage in ("validate", "featurize"):
        assert (
            f"{stage}'s partition tasks run on the Dask cluster at {cluster.address}"
            in (outputs[stage])
        )
    groups = ROWS // ROW_GROUP
    assert (
        f"final fit with xgboost.dask on {TRAIN_ROWS} rows in {groups} partition(s), on {WORKERS}"
        f" worker(s) at {cluster.address}, early stopping on 10% held out"
    ) in outputs["train"]
    # Loading the table would take its size on top of the ~250 MB of a stage's imports; what
    # they hold instead: validate a hash per row and its outlier sample (validate.sample_rows
    # rows of numbers), featurize a few partitions, train its CV sample.
    for stage, peak in peaks.items():
        assert peak < inputs.table_bytes, f"{stage} peaked at {peak >> 20} MB: {peaks}"
    assert read_json(root / "metrics" / "validation.json")["rows_out"] == ROWS
    metrics = read_json(root / "metrics" / "train.json")
    assert metrics["train_rows"] == TRAIN_ROWS and 1500 < metrics["cv_rows"] < 2500
    assert 1 <= metrics["n_iter"] <= 10
    assert read_json(root / "models" / "model.json")["training_data"]["rows"] == TRAIN_ROWS

    # The artifact every consumer reads: exported to ONNX, then scored by batch prediction.
    export = subprocess.run(
        [sys.executable, "-m", "mlrepo.stages.export", "--model", "models/model.joblib",
         "--test", "data/split/test.parquet", "--schema", "data/schema.json",
         "--onnx", "models/model.onnx", "--metrics", "metrics/export.json"],
        cwd=root, env=base_env(PROJECT), capture_output=True, text=True,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    assert read_json(root / "metrics" / "export.json")["passed"] is True
    models = root / "models"
    files = {
        "pipeline": (models / "model.joblib").read_bytes(),
        "metadata": (models / "model.json").read_bytes(),
        "onnx": (models / "model.onnx").read_bytes(),
    }
    bundle = ModelBundle(files=files, metadata=json.loads(files["metadata"]), source=str(models))
    model = from_bundle(bundle, "onnx")
    scored = predict_file(
        model, root / "data/split/test.parquet", root / "scored.parquet", ["target"]
    )
    assert scored.rows == ROWS - TRAIN_ROWS
    result = pd.read_parquet(root / "scored.parquet")
    accuracy = float((result["prediction"] == result["target"]).mean())
    assert accuracy > 0.85, f"accuracy {accuracy:.3f} on the held-out rows"
