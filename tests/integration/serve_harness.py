"""Helpers for the service tests: a trained project, a real uvicorn process, a real PostgreSQL.

``build_project`` trains a small model with the pipeline's own stage cores, exports it to
ONNX, and records the md5 of its files in ``dvc.lock``, as ``dvc repro`` would, in a git
repository (the registry resolves references inside one). ``Server`` runs ``mlrepo serve`` as a
subprocess on a free port of 127.0.0.1. ``Postgres`` is a throwaway server made with
initdb/pg_ctl (``throwaway_postgres`` for a fixture).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from glob import glob
from pathlib import Path
from typing import Any

import httpx
import joblib
import pandas as pd
import psutil
import pytest
import yaml

from mlrepo.bundle import MODEL_FILES
from mlrepo.io import file_md5, write_json
from mlrepo.params import (
    ExportParams,
    FeaturizeParams,
    GenerateParams,
    TrainParams,
    ValidateParams,
)
from mlrepo.stages.export import export
from mlrepo.stages.featurize import featurize
from mlrepo.stages.generate import synthesize
from mlrepo.stages.train import metadata, train
from mlrepo.stages.validate import validate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_answering(
    process: subprocess.Popen[bytes],
    get: Callable[[], httpx.Response],
    output: Callable[[], str],
    timeout: float,
    pause: float = 0.1,
) -> bool:
    """Poll ``get()`` until it answers 200 (True) or ``timeout`` seconds pass (False); a
    RuntimeError with ``output()`` (the server's log) if the server process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{output()}")
        with contextlib.suppress(httpx.TransportError):
            if get().status_code == 200:
                return True
        time.sleep(pause)
    return False


@dataclass(frozen=True)
class Project:
    root: Path
    test: pd.DataFrame  # held-out rows with the label column "target"

    @property
    def features(self) -> pd.DataFrame:
        return self.test.drop(columns="target")


def build_project(root: Path, n_samples: int = 600, n_estimators: int = 20) -> Project:
    """A git repository holding a trained model and the dvc.lock that vouches for its files."""
    generate = GenerateParams(
        n_samples=n_samples, n_features=8, n_informative=5, n_redundant=1, seed=11
    )
    result = validate(synthesize(generate), "target", ValidateParams())
    assert result.frame is not None and result.schema is not None, result.errors
    split = featurize(result.frame, result.schema, FeaturizeParams())
    params = TrainParams(cv_folds=2, n_jobs=1, random_forest={"n_estimators": n_estimators})
    trained = train(split.train, result.schema, split.preprocessor, params)
    models = root / "models"
    models.mkdir(parents=True)
    joblib.dump(trained.pipeline, models / "model.joblib")
    train_md5 = "0" * 32  # the train split is not kept; only its hash is recorded
    write_json(
        metadata(trained, result.schema, params, train_md5, len(split.train)),
        models / "model.json",
    )
    exported = export(trained.pipeline, split.test, result.schema, ExportParams())
    (models / "model.onnx").write_bytes(exported.onnx_bytes)
    write_json(exported.parity, root / "metrics" / "export.json")
    outs = [
        {"path": path, "md5": file_md5(root / path)}
        for path in MODEL_FILES.values()
        if (root / path).exists()
    ]
    lock = {"schema": "2.0", "stages": {"train": {"cmd": "tests", "outs": outs}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock), encoding="utf-8")
    (root / "dvc.yaml").write_text("stages: {}\n", encoding="utf-8")
    (root / ".gitignore").write_text("/models/\n*.db\n", encoding="utf-8")
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "-m", "model"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return Project(root, split.test)


def fast_log(url: str, **extra: str) -> dict[str, str]:
    """A server's environment logging to ``url`` with short flush, retry and ping intervals, so
    a test sees rows written, and an outage noticed, within a fraction of a second."""
    return {
        "DATABASE_URL": url,
        "MLREPO_LOG_FLUSH_SECONDS": "0.05",
        "MLREPO_LOG_RETRY_MAX_SECONDS": "0.5",
        "MLREPO_LOG_PING_SECONDS": "0.2",
        **extra,
    }


class Server:
    """``mlrepo serve`` in a subprocess on 127.0.0.1; ``stop()`` sends SIGTERM (graceful), as
    leaving a ``with Server(...) as server:`` block does."""

    def __init__(self, project: Path, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = project / f"serve-{self.port}.log"
        full_env = {**os.environ, **env, "MLREPO_LOG_LEVEL": "INFO"}
        full_env.pop("VIRTUAL_ENV", None)
        argv = [sys.executable, "-m", "mlrepo.cli", "serve", "--port", str(self.port), *args]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, cwd=project, env=full_env, stdout=log, stderr=subprocess.STDOUT
            )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self._wait_for_health()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _wait_for_health(self, timeout: float = 90) -> None:
        health = partial(self.client.get, "/health")
        if not wait_until_answering(self.process, health, lambda: self.output, timeout):
            self.kill()
            raise RuntimeError(f"the server did not answer /health in {timeout} s:\n{self.output}")

    @property
    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_until(self, condition: Any, timeout: float = 30, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.output[-3000:]}")
            time.sleep(0.1)

    def ready(self) -> dict[str, Any]:
        response = self.client.get("/ready")
        body: dict[str, Any] = response.json()
        body["http_status"] = response.status_code
        return body

    def wait_until_log_up(self, timeout: float = 30) -> None:
        """Until the prediction log has reached its database (readiness does not wait for it)."""
        self.wait_until(
            lambda: self.ready()["database"]["status"] == "up", timeout, "the log database up"
        )

    def metric(self, name: str, labels: str = "") -> float:
        """The value of one sample of /metrics, e.g. metric("x_total", 'reason="shutdown"')."""
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{wanted} not in /metrics")

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, as a process manager would; fails unless the server shut down cleanly."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        # After a graceful shutdown uvicorn re-raises the signal it caught, so the process ends
        # "killed by SIGTERM" for its supervisor to see.
        assert code in (0, -signal.SIGTERM), f"exit code {code}:\n{self.output}"
        assert "Application shutdown complete" in self.output, self.output
        assert "Traceback" not in self.output, self.output

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.client.close()


def log_writer_processes(server_pid: int) -> list[psutil.Process]:
    """The prediction log's writer processes (``python -m mlrepo.serve.log_process``) that the
    server process ``server_pid`` started."""
    return [
        child
        for child in psutil.Process(server_pid).children()
        if "mlrepo.serve.log_process" in " ".join(child.cmdline())
    ]


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")  # type: ignore[return-value]


def postgres_binaries() -> Path | None:
    """The folder of initdb and pg_ctl (Debian keeps them out of PATH), or None."""
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def throwaway_postgres(unavailable: str = "") -> Iterator[Postgres]:
    """A started throwaway server, for a fixture to ``yield from``; destroyed afterwards. Where
    none can be started here the test is skipped, with why and then ``unavailable``."""
    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip(
            "PostgreSQL tests skipped: no initdb/pg_ctl found "
            f"(apt-get install -y postgresql; .ci/run does){unavailable}"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL tests skipped: running as root and no 'postgres' user")
    server = Postgres(binaries)
    try:
        yield server
    finally:
        server.destroy()


class Postgres:
    """A throwaway PostgreSQL server on 127.0.0.1 (run as the ``postgres`` user when root)."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.port = free_port()
        # Not under pytest's tmp folder: that is private to root, and the server runs as postgres.
        self.base = Path(tempfile.mkdtemp(prefix="mlrepo-pg-"))
        self.data = self.base / "data"
        self.user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.user:
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self.user, str(self.binaries / tool), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.base / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)
