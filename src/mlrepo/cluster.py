"""Where train's parallel fits (and the partition tasks of validate and featurize on the
``train.distributed`` path, :mod:`mlrepo.partitioned`) run: here, or on the Dask cluster
DASK_SCHEDULER_ADDRESS names.

The address is the standard Dask environment variable, not a param: where the fits run changes
no output, so it must not change ``dvc.lock``. :func:`connect` wraps the stage: with an address
it connects a ``distributed.Client`` and makes joblib's dask backend the active one, so the
(candidate, fold) fits that :func:`mlrepo.cores.run` hands to joblib become tasks on the
cluster; without one it does nothing. ``python -m mlrepo.cluster up|down`` (``make cluster``)
starts and stops a cluster of real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1.

The one output that does depend on the cluster is opted into by a param: with
``train.distributed: true`` the final xgboost fit runs there too (:mod:`mlrepo.xgboost_dask`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlrepo.errors import MlrepoError
from mlrepo.logs import get_logger

ADDRESS_VARIABLE = "DASK_SCHEDULER_ADDRESS"
CONNECT_TIMEOUT_S = 10
# A task no worker can run (every worker gone) fails after this long instead of waiting forever.
NO_WORKERS_TIMEOUT = "30s"
STATE = Path(".dask-cluster")


class ClusterError(MlrepoError):
    """The Dask cluster named by DASK_SCHEDULER_ADDRESS cannot be reached or lost its workers."""


@dataclass(frozen=True)
class Cluster:
    address: str
    workers: int
    threads: int  # worker threads of the whole cluster
    client: Any  # distributed.Client (imported only when a cluster is used)


_active: Cluster | None = None


def address() -> str | None:
    """The scheduler address from ``DASK_SCHEDULER_ADDRESS``; None (run locally) when unset."""
    return os.environ.get(ADDRESS_VARIABLE, "").strip() or None


def current() -> Cluster | None:
    """The cluster :func:`connect` connected to, or None while the fits run locally."""
    return _active


def share(obj: Any) -> Any:
    """``obj`` sent once to the cluster (a Future the workers resolve), or ``obj`` when local.

    A task closing over the training frame would otherwise be pickled again with every batch.
    """
    if _active is None:
        return obj
    return _active.client.scatter(obj, broadcast=True, hash=False)


def joblib_backend() -> Any:
    """joblib's dask backend on the connected cluster (a ``parallel_config`` to enter).

    Only around the parallel fits: a single fit in this process (the final one) keeps joblib's
    own backend, or its trees would be fitted on the workers and come back as other bytes.
    """
    import joblib

    return joblib.parallel_config(backend="dask", wait_for_workers_timeout=CONNECT_TIMEOUT_S)


@contextmanager
def connect(work: str = "fits") -> Iterator[Cluster | None]:
    """Connect to the cluster at ``DASK_SCHEDULER_ADDRESS``; :mod:`mlrepo.cores` sends the
    parallel fits there while inside. Nothing to do when the variable is unset. ``work`` names
    what is sent, in the log line that says where it runs and in the failure message."""
    global _active
    where = address()
    log = get_logger()
    if where is None:
        log.info("%s run in this process (%s is not set)", work, ADDRESS_VARIABLE)
        yield None
        return
    from distributed import Client

    try:
        client = Client(where, timeout=CONNECT_TIMEOUT_S, set_as_default=True)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"{ADDRESS_VARIABLE}={where}: no Dask scheduler answered within"
            f" {CONNECT_TIMEOUT_S} s ({exc}). Fix: start one (make cluster) or unset"
            f" {ADDRESS_VARIABLE} to run in this process"
        ) from exc
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError as exc:
            raise ClusterError(
                f"the Dask scheduler at {where} has no worker after {CONNECT_TIMEOUT_S} s."
                f" Fix: start workers (dask worker {where}) or unset {ADDRESS_VARIABLE}"
            ) from exc
        _check_versions(client, where)
        nthreads = client.nthreads()
        _active = Cluster(where, len(nthreads), sum(nthreads.values()), client)
        log.info(
            "%s run on the Dask cluster at %s: %d worker(s), %d thread(s)",
            work,
            where,
            _active.workers,
            _active.threads,
        )
        yield _active
    except ClusterError:
        raise
    except Exception as exc:
        if _is_cluster_failure(exc):
            raise ClusterError(
                f"the Dask cluster at {where} failed during the {work} ({type(exc).__name__}:"
                f" {exc}); nothing was written. Fix: restart the workers (make cluster) and"
                f" run again, or unset {ADDRESS_VARIABLE} to run in this process"
            ) from exc
        raise
    finally:
        _active = None
        client.close()


def _is_cluster_failure(exc: BaseException) -> bool:
    """Errors of the cluster rather than of the fits: workers lost, results gone, no workers."""
    from concurrent.futures import CancelledError

    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker, NoValidWorkerError, NoWorkerError

    lost = KilledWorker | NoValidWorkerError | NoWorkerError | CommClosedError | CancelledError
    # joblib's dask backend, when the cluster has no worker left as the fits start
    no_worker = isinstance(exc, TimeoutError) and "DaskDistributedBackend" in str(exc)
    return isinstance(exc, lost) or no_worker


# The libraries whose versions the fits depend on, besides scikit-learn (checked by metadata:
# importing xgboost on every worker to read a version would cost a second), each under the
# distribution names it is installed as (requirements.txt pins xgboost-cpu).
CHECKED_LIBRARIES = {
    "xgboost": ("xgboost", "xgboost-cpu"),
    "dask": ("dask",),
    "distributed": ("distributed",),
}


def code_digest() -> str:
    """The versions of scikit-learn and ``CHECKED_LIBRARIES`` and a digest of the mlrepo sources
    this interpreter imports."""
    import hashlib

    import sklearn

    import mlrepo

    versions = [f"scikit-learn {sklearn.__version__}"]
    for library, distributions in CHECKED_LIBRARIES.items():
        versions.append(f"{library} {_installed(distributions)}")
    package = Path(mlrepo.__file__).parent
    digest = hashlib.md5(", ".join(versions).encode())
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    return f"{', '.join(versions)}, mlrepo sources {digest.hexdigest()[:12]}"


def _installed(distributions: tuple[str, ...]) -> str:
    """The version of the first of ``distributions`` that is installed, or 'missing'."""
    from importlib import metadata

    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "missing"


def _check_versions(client: Any, where: str) -> None:
    """The scheduler and workers must run this code and libraries, or tasks would not load (the
    scheduler unpickles them) and models could differ."""
    here = code_digest()
    found = {"scheduler": client.run_on_scheduler(code_digest), **client.run(code_digest)}
    wrong = {name: theirs for name, theirs in found.items() if theirs != here}
    if wrong:
        listed = "; ".join(f"{name}: {theirs}" for name, theirs in wrong.items())
        raise ClusterError(
            f"the Dask cluster at {where} runs other code than this process ({here}): {listed}."
            " Fix: start the scheduler and workers from this checkout's .venv (make cluster), so"
            " they import the same mlrepo and libraries"
        )


def start(workers: int, threads: int, port: int, state: Path = STATE) -> str:
    """Start a scheduler and ``workers`` workers on 127.0.0.1 in the background; the address."""
    state.mkdir(exist_ok=True)
    scheduler_file = state / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    env = {
        # Arrow's default pool keeps the buffers of every partition read (~150 MB a worker
        # more); the system allocator hands them back. A value the user set wins.
        "ARROW_DEFAULT_MEMORY_POOL": "system",
        **os.environ,
        "DASK_DISTRIBUTED__SCHEDULER__NO_WORKERS_TIMEOUT": NO_WORKERS_TIMEOUT,
    }
    bin_dir = Path(sys.executable).parent
    pids = [
        _spawn(
            [
                str(bin_dir / "dask"),
                "scheduler",
                "--host=127.0.0.1",
                f"--port={port}",
                "--no-dashboard",
                f"--scheduler-file={scheduler_file}",
            ],
            state / "scheduler.log",
            env,
        )
    ]
    deadline = time.monotonic() + 30
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not scheduler_file.exists():
        stop(state, pids)
        raise ClusterError(f"the scheduler did not start in 30 s; see {state / 'scheduler.log'}")
    where = str(json.loads(scheduler_file.read_text())["address"])
    for n in range(workers):
        pids.append(
            _spawn(
                [
                    str(bin_dir / "dask"),
                    "worker",
                    where,
                    "--host=127.0.0.1",
                    f"--nthreads={threads}",
                    "--no-dashboard",
                    f"--name=worker-{n}",
                ],
                state / f"worker-{n}.log",
                env,
            )
        )
    (state / "pids.json").write_text(json.dumps({"address": where, "pids": pids}))
    from distributed import Client

    with Client(where, timeout=CONNECT_TIMEOUT_S) as client:
        client.wait_for_workers(workers, timeout=60)
    return where


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> int:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,  # its own process group: stop() ends a worker and its nanny
        )  # fmt: skip
    return proc.pid


def stop(state: Path = STATE, pids: list[int] | None = None) -> int:
    """End the processes :func:`start` recorded (each process group); how many were running."""
    if pids is None:
        recorded = state / "pids.json"
        if not recorded.exists():
            return 0
        pids = list(json.loads(recorded.read_text())["pids"])
    running = 0
    for pid in reversed(pids):  # workers first, then the scheduler
        try:
            os.killpg(pid, signal.SIGTERM)
            running += 1
        except ProcessLookupError:
            continue
    (state / "pids.json").unlink(missing_ok=True)
    return running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a scheduler and workers on 127.0.0.1")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--threads", type=int, default=1, help="threads per worker")
    up.add_argument("--port", type=int, default=8786)
    sub.add_parser("down", help="stop the cluster `up` started")
    args = parser.parse_args(argv)
    if args.command == "down":
        print(f"stopped {stop()} process(es)")
        return 0
    if (STATE / "pids.json").exists():
        raise ClusterError(f"a cluster is already recorded in {STATE}; stop it: make cluster-down")
    where = start(args.workers, args.threads, args.port)
    print(
        f"Dask cluster: scheduler {where}, {args.workers} worker(s) x {args.threads} thread(s);"
        f" logs in {STATE}/\n"
        f"  use it:  export {ADDRESS_VARIABLE}={where}\n"
        f"  stop it: make cluster-down"
    )
    return 0


if __name__ == "__main__":
    from mlrepo.errors import run_cli

    raise SystemExit(run_cli(main))
