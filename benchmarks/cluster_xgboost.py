"""xgboost.dask benchmark: train on a partitioned split, single process vs a Dask cluster (issue 8).

Run from the project root: ``.venv/bin/python benchmarks/cluster_xgboost.py --rows 10000000``
(writes ``benchmarks/CLUSTER_XGBOOST_RESULTS.md``). In a temporary directory it builds the train
stage's inputs with the generate, validate and featurize stages (``--rows`` rows; featurize
writes the split in row groups of ~1M rows, the partitions), then runs the train stage process
with ``train.model: xgboost`` twice: in one process (``train.distributed: false``,
``train.n_jobs=2``) and with ``train.distributed: true`` against a scheduler and ``--workers``
workers x ``--threads`` threads started here with distributed's CLI (``--memory-limit`` each,
if given). It reports each run's wall time, the peak resident memory of the stage process and,
on the cluster, of each worker (sampled every 0.2 s), the final fit's boosting rounds, and the
accuracy of both models on the test split.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cluster import build_split  # benchmarks/cluster.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUT = ROOT / "benchmarks" / "CLUSTER_XGBOOST_RESULTS.md"
TRAIN_ARGS = [
    "--train", "data/split/train.parquet", "--schema", "data/schema.json",
    "--preprocessor", "models/preprocessor.joblib",
]  # fmt: skip


def prepare(work: Path, rows: int, env: dict[str, str]) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["generate"]["n_samples"] = rows
    params["train"].update(model="xgboost", n_jobs=2)
    for name, distributed in (("local", False), ("cluster", True)):
        params["train"]["distributed"] = distributed
        (work / f"{name}.yaml").write_text(yaml.safe_dump(params))
        (work / name).mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    build_split(work, env)


class PeakMemory:
    """The largest resident memory seen in each process tree of ``pids`` (sampled)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.peaks = pids, [0] * len(pids)
        self.running = True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        import psutil

        while self.running:
            for n, pid in enumerate(self.pids):
                try:
                    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
                    rss = max(p.memory_info().rss for p in tree)
                except psutil.Error:
                    continue
                self.peaks[n] = max(self.peaks[n], rss)
            time.sleep(0.2)

    def stop(self) -> list[int]:
        self.running = False
        self.thread.join()
        return self.peaks


def train(work: Path, name: str, env: dict[str, str]) -> dict[str, Any]:
    """One train stage process: wall time, its peak resident memory, its log."""
    args = [*TRAIN_ARGS, "--params", f"{name}.yaml", "--model", f"{name}/model.joblib",
            "--meta", f"{name}/model.json", "--metrics", f"{name}/train.json"]  # fmt: skip
    start = time.perf_counter()
    with (work / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "python"), "-m", "mlrepo.stages.train", *args], cwd=work, env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    text = (work / f"{name}.log").read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"train ({name}) failed:\n{text}")
    metrics = json.loads((work / name / "train.json").read_text())
    return {"wall": wall, "peak": usage.ru_maxrss * 1024, "log": text, "metrics": metrics}


def accuracy(work: Path, name: str) -> float:
    import joblib
    import pandas as pd

    from mlrepo.io import read_json

    pipeline = joblib.load(work / name / "model.joblib")
    target = read_json(work / "data" / "schema.json")["target"]
    test = pd.read_parquet(work / "data" / "split" / "test.parquet")
    return float((pipeline.predict(test.drop(columns=[target])) == test[target]).mean())


def start_cluster(
    work: Path, env: dict[str, str], workers: int, threads: int, memory_limit: str | None
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    scheduler_file = work / "scheduler.json"

    def spawn(argv: list[str], name: str) -> None:
        with (work / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [str(BIN / "dask"), *argv], env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        procs.append(proc)

    spawn(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
           "--scheduler-file", str(scheduler_file)], "scheduler")  # fmt: skip
    while not scheduler_file.exists():
        time.sleep(0.2)
    address = str(json.loads(scheduler_file.read_text())["address"])
    limit = ["--memory-limit", memory_limit] if memory_limit else []
    for n in range(workers):
        spawn(["worker", address, "--host", "127.0.0.1", "--nthreads", str(threads),
               "--no-dashboard", "--name", f"worker-{n}", *limit], f"worker-{n}")  # fmt: skip
    from distributed import Client

    with Client(address) as client:
        client.wait_for_workers(workers, timeout=120)
    return address, procs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--memory-limit", help="of each worker, e.g. 4GiB (default: none)")
    parser.add_argument("--out", type=Path, default=OUT, help="the results file")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MLREPO_LOG_LEVEL": "INFO"}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    # Workers: Arrow's system allocator hands freed buffers back (its default pool keeps them).
    worker_env = {**env, "ARROW_DEFAULT_MEMORY_POOL": "system"}
    with tempfile.TemporaryDirectory(prefix="mlrepo-xgboost-dask-bench-") as tmp:
        work = Path(tmp)
        prepare(work, args.rows, env)
        local = train(work, "local", env)
        address, procs = start_cluster(
            work, worker_env, args.workers, args.threads, args.memory_limit
        )
        try:
            watch = PeakMemory([proc.pid for proc in procs[1:]])
            remote = train(work, "cluster", {**env, "DASK_SCHEDULER_ADDRESS": address})
            worker_peaks = watch.stop()
        finally:
            for proc in procs:
                os.killpg(proc.pid, 15)
            for proc in procs:
                proc.wait(timeout=30)
        scores = {name: accuracy(work, name) for name in ("local", "cluster")}
        partitions = next(
            line.split(" partition(s)")[0].rsplit(" ", 1)[-1]
            for line in remote["log"].splitlines()
            if "partition(s)" in line
        )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mb = 2**20
    peaks = ", ".join(f"{peak / mb:,.0f}" for peak in worker_peaks)
    command = " ".join([".venv/bin/python benchmarks/cluster_xgboost.py", *(argv or sys.argv[1:])])
    train_rows = local["metrics"]["train_rows"]
    rows = [
        "| run | wall (s) | peak memory, stage process (MB) | peak memory per worker (MB)"
        " | rounds | test accuracy |",
        "|---|---|---|---|---|---|",
        f"| one process, `train.distributed: false`, `n_jobs=2` | {local['wall']:.1f}"
        f" | {local['peak'] / mb:,.0f} | | {local['metrics']['n_iter']} | {scores['local']:.4f} |",
        f"| cluster, `train.distributed: true` | {remote['wall']:.1f} | {remote['peak'] / mb:,.0f}"
        f" | {peaks} | {remote['metrics']['n_iter']} | {scores['cluster']:.4f} |",
    ]
    table = "\n".join(rows)
    text = f"""# xgboost.dask benchmark (issue 8)

Command: `{command.strip()}` — written {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")} on
this {os.cpu_count()}-core machine ({platform.machine()}, shared; load average at the end
{load}), mlrepo commit `{commit}` (plus the working tree's uncommitted files).

The train stage process, `train.model: xgboost` (params.yaml's xgboost section, early stopping
on), on {train_rows:,} training rows of {args.rows:,} generated ({partitions} row groups =
partitions); CV on the seeded `train.cv_max_rows` sample either way. Cluster:
{args.workers} worker(s) x {args.threads} thread(s) on this machine, memory limit
{args.memory_limit or "none"} each.

{table}

The single process holds the whole split (read_table) and its preprocessed copy; on the cluster
the stage process holds only the CV sample and each worker its share of the partitions as
float32 plus XGBoost's quantized matrix, so the per-worker peak is what bounds the table size a
cluster of N such workers can train on. Both runs share the machine's {os.cpu_count()} cores,
so the wall times compare the overheads (scheduler, partition transfers, per-worker sketches),
not a speed-up.
"""
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
