"""A real Dask cluster for the tests: `dask scheduler` and `dask worker` processes on 127.0.0.1.

Started with distributed's own CLI on free ports (``--port 0``, the address read back from the
scheduler file), each process in its own process group so a test can kill a worker (nanny and
worker process together) and so :meth:`DaskCluster.stop` leaves nothing behind, even after a
failed test. The processes import the code of the project copy under test (``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dvc_harness import VENV_BIN, Repo, base_env

DASK = VENV_BIN / "dask"


@dataclass
class DaskCluster:
    repo: Repo
    directory: Path
    address: str = ""
    scheduler: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The environment of a command that should send its fits to this cluster."""
        return {**base_env(self.repo.root), "DASK_SCHEDULER_ADDRESS": self.address}

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.directory / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip

    def start(
        self,
        n_workers: int,
        no_workers_timeout: str = "60s",
        worker_options: tuple[str, ...] = (),
        config: dict[str, str] | None = None,
    ) -> None:
        """``worker_options`` go to every ``dask worker``; ``config`` holds more Dask settings
        (``DASK_...`` variables) of the scheduler and workers."""
        env = {
            **base_env(self.repo.root),
            "DASK_DISTRIBUTED__SCHEDULER__NO_WORKERS_TIMEOUT": no_workers_timeout,
            **(config or {}),
        }
        scheduler_file = self.directory / "scheduler.json"
        self.scheduler = self._spawn(
            "scheduler",
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)],
            env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            if time.monotonic() > deadline or self.scheduler.poll() is not None:
                raise RuntimeError(f"scheduler did not start:\n{self.log('scheduler')}")
            time.sleep(0.2)
        self.address = json.loads(scheduler_file.read_text())["address"]
        for n in range(n_workers):
            self.workers.append(
                self._spawn(
                    f"worker-{n}",
                    [
                        str(DASK),
                        "worker",
                        self.address,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--name",
                        f"worker-{n}",
                        *worker_options,
                    ],
                    env,
                )
            )
        self.wait_for_workers(n_workers)

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(n, timeout=timeout)

    def task_count(self) -> int:
        """Tasks the workers are running or have been given now."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return sum(len(keys) for keys in client.processing().values())

    def kill_worker(self, n: int) -> None:
        """SIGKILL a worker and its nanny, as when its machine dies."""
        _kill_group(self.workers[n], signal.SIGKILL)

    def log(self, name: str) -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc is not None:
                _kill_group(proc, signal.SIGTERM)
        for proc in [*self.workers, self.scheduler]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait(timeout=15)


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


@contextmanager
def dask_cluster(
    repo: Repo,
    directory: Path,
    n_workers: int = 2,
    no_workers_timeout: str = "60s",
    worker_options: tuple[str, ...] = (),
    config: dict[str, str] | None = None,
) -> Iterator[DaskCluster]:
    """A running cluster for ``repo``'s code, stopped on the way out whatever happened."""
    directory.mkdir(parents=True, exist_ok=True)
    cluster = DaskCluster(repo, directory)
    try:
        cluster.start(n_workers, no_workers_timeout, worker_options, config)
        yield cluster
    finally:
        cluster.stop()


def wait_for_tasks(cluster: DaskCluster, timeout: float = 120) -> None:
    """Until the scheduler holds a stage's tasks (the stage is past start-up, tasks running)."""
    deadline = time.monotonic() + timeout
    while cluster.task_count() < 2:
        if time.monotonic() > deadline:
            pytest.fail("the stage's tasks never reached the scheduler")
        time.sleep(0.2)


def run_losing_workers(
    cluster: DaskCluster, cwd: Path, argv: list[str], *workers: int
) -> tuple[int, str]:
    """Exit code and output of ``argv`` run against ``cluster``, killing ``workers`` once its
    tasks are running."""
    proc = subprocess.Popen(
        argv, cwd=cwd, env=cluster.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_tasks(cluster)
        for n in workers:
            cluster.kill_worker(n)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, output
