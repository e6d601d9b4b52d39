"""validate + featurize on a large table: whole-table vs partition by partition (issue 8).

Run from the project root: ``.venv/bin/python benchmarks/cluster_partitioned.py --rows 10000000``
(writes ``benchmarks/CLUSTER_PARTITIONED_RESULTS.md``). In a temporary directory it generates
``--rows`` synthetic rows (params.yaml's generate section, ``generate.partition_rows`` rows per
row group), then runs the validate and featurize stage processes three ways:

- **whole table**: ``train.distributed: false``, each stage reads its table into one process;
- **partitioned, local**: ``train.distributed: true`` without a scheduler, the partition tasks
  on this machine's threads (in the stage's process);
- **partitioned, cluster**: the same against a scheduler and ``--workers`` workers started here
  with distributed's CLI, the partition tasks on the workers.

Each row gives the stage's wall time and the peak resident memory of its process (and, on the
cluster, of each worker, sampled every 0.2 s). It checks that the two partitioned runs wrote the
same bytes and that the partitioned validate's report and schema equal the whole-table ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cluster_xgboost import PeakMemory, start_cluster  # beside this script

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUT = ROOT / "benchmarks" / "CLUSTER_PARTITIONED_RESULTS.md"
STAGES = {
    "validate": [
        "--data", "{raw}", "--out", "data/validated.parquet", "--schema", "data/schema.json",
        "--report", "metrics/validation.json",
    ],
    "featurize": [
        "--data", "data/validated.parquet", "--schema", "data/schema.json",
        "--train", "data/split/train.parquet", "--test", "data/split/test.parquet",
        "--preprocessor", "models/preprocessor.joblib",
    ],
}  # fmt: skip
OUTPUTS = (
    "data/validated.parquet",
    "data/schema.json",
    "metrics/validation.json",
    "data/split/train.parquet",
    "data/split/test.parquet",
    "models/preprocessor.joblib",
)
MB = 2**20


def params_file(work: Path, name: str, rows: int, partition: int, distributed: bool) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["generate"].update(n_samples=rows, partition_rows=partition)
    params["train"].update(model="xgboost", distributed=distributed)
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def stage(run: Path, name: str, params: Path, raw: Path, env: dict[str, str]) -> dict[str, Any]:
    """One stage process in ``run``: wall time, its peak resident memory."""
    args = [a.format(raw=raw) for a in STAGES[name]]
    start = time.perf_counter()
    with (run / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "python"), "-m", f"mlrepo.stages.{name}", "--params", str(params), *args],
            cwd=run, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} in {run} failed:\n{(run / f'{name}.log').read_text()}")
    return {"wall": wall, "peak": usage.ru_maxrss * 1024}


def pipeline(
    work: Path, name: str, params: Path, raw: Path, env: dict[str, str]
) -> dict[str, dict[str, Any]]:
    run = work / name
    run.mkdir()
    return {s: stage(run, s, params, raw, env) for s in STAGES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--partition-rows", type=int, default=1_048_576)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--memory-limit", help="of each worker, e.g. 2GiB (default: none)")
    parser.add_argument("--out", type=Path, default=OUT, help="the results file")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MLREPO_LOG_LEVEL": "INFO"}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    worker_env = {**env, "ARROW_DEFAULT_MEMORY_POOL": "system"}
    with tempfile.TemporaryDirectory(prefix="mlrepo-partitioned-bench-") as tmp:
        work = Path(tmp)
        whole = params_file(work, "whole", args.rows, args.partition_rows, distributed=False)
        parted = params_file(work, "parted", args.rows, args.partition_rows, distributed=True)
        raw = work / "raw.parquet"
        subprocess.run(
            [str(BIN / "python"), "-m", "mlrepo.stages.generate", "--params", str(whole),
             "--out", str(raw)], cwd=work, env=env, check=True, capture_output=True,
        )  # fmt: skip
        import pyarrow.parquet as pq

        groups = pq.ParquetFile(raw).num_row_groups
        results = {
            "whole": pipeline(work, "whole", whole, raw, env),
            "local": pipeline(work, "local", parted, raw, env),
        }
        address, procs = start_cluster(
            work, worker_env, args.workers, args.threads, args.memory_limit
        )
        try:
            watch = PeakMemory([proc.pid for proc in procs[1:]])
            cluster_env = {**env, "DASK_SCHEDULER_ADDRESS": address}
            results["cluster"] = pipeline(work, "cluster", parted, raw, cluster_env)
            worker_peaks = watch.stop()
        finally:
            for proc in procs:
                os.killpg(proc.pid, 15)
            for proc in procs:
                proc.wait(timeout=30)
        same = [
            name
            for name in OUTPUTS
            if (work / "local" / name).read_bytes() == (work / "cluster" / name).read_bytes()
        ]
        equal_report = all(
            (work / "whole" / name).read_bytes() == (work / "local" / name).read_bytes()
            for name in ("data/schema.json", "metrics/validation.json")
        )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    command = " ".join(
        [".venv/bin/python benchmarks/cluster_partitioned.py", *(argv or sys.argv[1:])]
    )
    label = {
        "whole": "whole table, one process",
        "local": "partitioned, this process's threads",
        "cluster": f"partitioned, cluster of {args.workers} x {args.threads}",
    }
    lines = [
        "| stage | run | wall (s) | peak memory, stage process (MB) | peak per worker (MB) |",
        "|---|---|---|---|---|",
    ]
    for name in STAGES:
        for run, found in results.items():
            workers = ", ".join(f"{p / MB:,.0f}" for p in worker_peaks) if run == "cluster" else ""
            lines.append(
                f"| {name} | {label[run]} | {found[name]['wall']:.1f}"
                f" | {found[name]['peak'] / MB:,.0f} | {workers} |"
            )
    table = "\n".join(lines)
    text = f"""# validate + featurize on {args.rows:,} rows: whole table vs partitioned (issue 8)

Command: `{command.strip()}` — written {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")} on
this {os.cpu_count()}-core machine ({platform.machine()}, shared; load average at the end
{load}), mlrepo commit `{commit}` (plus the working tree's uncommitted files).

{args.rows:,} synthetic rows (22 features, params.yaml's generate section) in {groups} row
groups (`generate.partition_rows`), the stage processes run one after the other. Worker peaks
are over both stages; memory limit {args.memory_limit or "none"} each.

{table}

- Partitioned runs, local vs cluster, byte-identical outputs: {len(same)} of {len(OUTPUTS)}
  ({", ".join(same)}).
- Partitioned validate's `schema.json` and `validation.json` equal to the whole table's:
  {"yes" if equal_report else "NO"}.

What the partitioned stage process still holds: validate, a 64-bit hash per row (repeated rows
across partitions), label and category counts, the outlier sample (`validate.sample_rows` rows
of the numeric columns) and a few partitions on their way to the file; featurize, a few
partitions and the `featurize.sample_rows` sample. With the partitions on this process's
threads ("local") the partitions being worked on are in it too. The whole-table featurize's
split is scikit-learn's `train_test_split` over the table; the partitioned one draws per
partition (each class's test share to the row, other rows), so their split files differ by
design.
"""
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
