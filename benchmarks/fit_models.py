"""Single-fit benchmark: XGBoost and LightGBM against scikit-learn's HistGradientBoosting.

Run from the project root: ``.venv/bin/python benchmarks/fit_models.py`` (options: ``--sizes``,
``--threads``, ``--rounds``). Each fit is one ``fit`` of the estimator ``train.model`` builds
(project defaults from ``mlrepo.params``) on ``make_classification`` data with 20 features and 2
classes, early stopping off so that every model does the same number of boosting rounds. The
models run interleaved (size, threads, then each model in turn, ``--rounds`` times) so that a
change in the machine's load hits them alike; the table gives the fastest round, the load
average at the start and the log loss on 10% held-out rows (same data for all three). Writes
``benchmarks/FIT_MODELS.md`` after each group of rows, replacing only the sizes and thread counts
measured (each row keeps the command that measured it).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from sklearn.metrics import log_loss
from threadpoolctl import threadpool_limits

from mlrepo.models import build_estimator
from mlrepo.params import TrainParams

MODELS = ("hist_gradient_boosting", "xgboost", "lightgbm")
RESULTS = Path(__file__).with_name("FIT_MODELS.md")


def fit_seconds(model: str, threads: int, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Wall seconds of one fit with ``threads`` threads, and the held-out log loss."""
    params = TrainParams.model_validate({"model": model, model: {"early_stopping": False}})
    estimator = build_estimator(params, threads=threads)
    cut = len(x) * 9 // 10
    # HistGradientBoosting has no n_jobs: OpenMP's limit is its thread count (as in train).
    with threadpool_limits(threads):
        start = time.perf_counter()
        estimator.fit(x[:cut], y[:cut])
        seconds = time.perf_counter() - start
    return seconds, float(log_loss(y[cut:], estimator.predict_proba(x[cut:])))


def write_table(rows: dict[tuple[int, int, str], str]) -> None:
    ordered = [rows[key] for key in sorted(rows, key=lambda k: (k[0], k[1], MODELS.index(k[2])))]
    RESULTS.write_text(
        "# One fit: XGBoost and LightGBM against HistGradientBoosting\n\n"
        f"On {os.cpu_count()} cores, Python {platform.python_version()}; fastest of the"
        " interleaved rounds, 20 features, 2 classes, 200 boosting rounds (project defaults,"
        " early stopping off), 90% of the rows fitted. The machine is shared: `load` is the"
        " 1-minute load average when the group's fits began; compare models within a group.\n\n"
        "| rows | threads | model | fit s | × HGB | held-out log loss | load | rounds | command |\n"
        "|---:|---:|---|---:|---:|---:|---:|---:|---|\n" + "\n".join(ordered) + "\n",
        encoding="utf-8",
    )


def read_table() -> dict[tuple[int, int, str], str]:
    rows = {}
    if RESULTS.exists():
        for line in RESULTS.read_text(encoding="utf-8").splitlines():
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if len(cells) == 9 and cells[0].replace(",", "").isdigit():
                rows[(int(cells[0].replace(",", "")), int(cells[1]), cells[2])] = line
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    command = "python benchmarks/fit_models.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = read_table()
    for size in args.sizes:
        x, y = make_classification(size, 20, n_informative=10, n_redundant=4, random_state=0)
        for threads in args.threads:
            load = os.getloadavg()[0]
            best: dict[str, float] = {}
            losses: dict[str, float] = {}
            for _ in range(args.rounds):
                for model in MODELS:
                    seconds, loss = fit_seconds(model, threads, x, y)
                    best[model] = min(best.get(model, np.inf), seconds)
                    losses[model] = loss
                    print(f"{size:>9} rows {threads} thr {model:<22} {seconds:7.2f} s", flush=True)
            base = best["hist_gradient_boosting"]
            for model in MODELS:
                rows[(size, threads, model)] = (
                    f"| {size:,} | {threads} | {model} | {best[model]:.2f} |"
                    f" {best[model] / base:.2f} | {losses[model]:.4f} | {load:.1f} |"
                    f" {args.rounds} | `{command.strip()}` |"
                )
            write_table(rows)
            print(f"wrote {RESULTS}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
