"""How the train stage spends ``train.n_jobs`` cores: parallel fits, or threads within one fit.

``train.n_jobs`` means the same for every model: the most cores training uses at once. With
several fits to run (CV folds, search candidates), the fits run side by side, one thread each,
which keeps every core busy without OpenMP barriers. A single fit gets one thread per
``ROWS_PER_THREAD`` rows, up to that limit: below it the threads of an OpenMP model
(HistGradientBoosting, XGBoost) spend their time waiting for each other at the barriers of
tiny parallel loops. Measured on 2 cores: HistGradientBoosting on 8,000 rows took 1.0 s on one
thread and 6.2 s on two; on 100,000 rows, 3.5 s and 2.3 s. Neither the split nor the thread
count changes a fitted model or a score, so outputs do not depend on the machine.

On a Dask cluster (:mod:`mlrepo.cluster`), the several fits are planned against the cluster's
worker threads instead of this machine's cores and run there; a single fit (the final one) still
runs here, planned as without a cluster, so the model written is the same either way
(``train.distributed: true`` is the exception: its final fit is ``xgboost.dask``'s, on the
cluster).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from mlrepo import cluster

ROWS_PER_THREAD = 50_000

T = TypeVar("T")
R = TypeVar("R")


def available() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve(n_jobs: int, cores: int | None = None) -> int:
    """``n_jobs`` as a core count out of ``cores`` (default :func:`available`): -1 is every
    core, -2 all but one, as in joblib; a positive count is at most ``cores``."""
    total = available() if cores is None else cores
    if n_jobs > 0:
        return n_jobs if cores is None else min(n_jobs, total)
    return max(1, total + 1 + n_jobs)


@dataclass(frozen=True)
class Plan:
    """``workers`` fits at once, ``threads`` threads inside each."""

    workers: int
    threads: int


def plan(n_fits: int, n_rows: int, n_jobs: int) -> Plan:
    """Split the cores of ``n_jobs`` between ``n_fits`` fits of ``n_rows`` rows each.

    With a cluster connected, several fits share its worker threads (one thread each: a task
    runs inside one worker thread); one fit runs here, on this machine's cores.
    """
    remote = cluster.current()
    if remote is not None and n_fits > 1:
        return Plan(min(n_fits, resolve(n_jobs, remote.threads)), 1)
    cores = resolve(n_jobs)
    if n_fits > 1 and cores > 1:
        workers = min(cores, n_fits)
        return Plan(workers, max(1, cores // workers))
    return Plan(1, max(1, min(cores, n_rows // ROWS_PER_THREAD)))


def run(task: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``task(item)`` for every item, ``workers`` at a time, results in the order of ``items``.

    Threads, since the fits release the GIL (tree building, OpenMP loops). Through joblib, so a
    ``joblib.parallel_config(backend=...)`` around the caller sends the fits elsewhere; on a
    cluster (:func:`mlrepo.cluster.connect`) ``task``, with the data it closes over, is sent to
    the workers once rather than with every batch of tasks.
    """
    remote = cluster.current() is not None
    if workers == 1 and not remote:
        return (task(item) for item in items)
    from joblib import Parallel, delayed

    if not remote:
        return iter(
            Parallel(n_jobs=workers, prefer="threads", return_as="generator")(
                delayed(task)(item) for item in items
            )
        )
    shared = cluster.share(task)
    with cluster.joblib_backend():  # the Parallel keeps the backend it was called with
        return iter(
            Parallel(n_jobs=workers, return_as="generator")(
                delayed(_apply_on_worker)(shared, item) for item in items
            )
        )


def _apply_on_worker(task: Callable[[T], R], item: T) -> R:
    """``task(item)`` with joblib inside the task kept to threads on its worker.

    The dask backend would otherwise be the nested one too, and a random forest's trees would
    each become a task of their own.
    """
    from joblib import parallel_config

    if not callable(task):  # the Future of share(), when joblib runs a batch in this process
        task = task.result()
    with parallel_config(backend="threading"):
        return task(item)
