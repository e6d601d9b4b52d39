"""Helpers to drive real DVC in temporary git repositories copied from the project.

A copy holds the working-tree versions of the files git tracks; every subprocess gets the
project's venv first on PATH so the stages' `python -m mlrepo...` is the venv's python.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
# Tests run as `.venv/bin/python -m pytest`: the venv is where this interpreter lives (not
# resolved, since .venv/bin/python is usually a symlink to the system interpreter).
VENV_BIN = Path(sys.executable).parent
VENV = VENV_BIN.parent
DVC = VENV_BIN / "dvc"
UP_TO_DATE = "Data and pipelines are up to date."
STAGES = ("generate", "validate", "featurize", "train", "evaluate")


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return f"$ {' '.join(self.args)}\nexit {self.returncode}\n{self.output}"


def base_env(root: Path) -> dict[str, str]:
    """The environment of every subprocess: the venv first on PATH, as the Makefile does.

    ``PYTHONPATH`` points at the copy's own ``src`` so the stages run the code of the copy
    rather than whatever checkout the editable install points to; DVC's per-repository site
    cache goes beside the copy instead of accumulating in /var/tmp/dvc.
    """
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", os.defpath)])
    env["PYTHONPATH"] = str(root / "src")
    env["DVC_NO_ANALYTICS"] = "1"
    env["DVC_SITE_CACHE_DIR"] = str(root.parent / "dvc-site-cache")
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


@dataclass(frozen=True)
class Repo:
    """A temporary git repository holding a copy of the project."""

    root: Path

    def run(
        self,
        *args: str | Path,
        check: bool = True,
        timeout: float = 600,
        env: dict[str, str] | None = None,
    ) -> Result:
        argv = tuple(str(a) for a in args)
        start = time.perf_counter()
        proc = subprocess.run(
            argv,
            cwd=self.root,
            env=base_env(self.root) if env is None else env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        seconds = time.perf_counter() - start
        result = Result(argv, proc.returncode, proc.stdout, proc.stderr, seconds)
        if check and result.returncode != 0:
            pytest.fail(f"command failed in {self.root}:\n{result.describe()}")
        return result

    def dvc(self, *args: str | Path, check: bool = True, timeout: float = 600) -> Result:
        return self.run(DVC, *args, check=check, timeout=timeout)

    def git(self, *args: str | Path, check: bool = True) -> Result:
        return self.run("git", *args, check=check)

    def path(self, relative: str) -> Path:
        return self.root / relative

    def read_json(self, relative: str) -> Any:
        return json.loads(self.path(relative).read_text(encoding="utf-8"))

    def params(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(self.path("params.yaml").read_text("utf-8"))
        return data

    def set_params(self, updates: dict[str, Any], remove: tuple[str, ...] = ()) -> None:
        """Edit params.yaml by dotted keys (comments are not kept; this is a throwaway copy)."""
        data = self.params()
        for dotted in remove:
            *parents, leaf = dotted.split(".")
            node = data
            for part in parents:
                node = node[part]
            del node[leaf]
        for dotted, value in updates.items():
            *parents, leaf = dotted.split(".")
            node = data
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        self.path("params.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)


def configure_git(repo: Repo) -> None:
    repo.git("config", "user.name", "mlrepo integration tests")
    repo.git("config", "user.email", "tests@mlrepo.invalid")
    repo.git("config", "commit.gpgsign", "false")


def copy_tracked_files(source: Path, target: Path) -> None:
    """The working-tree versions of the files git tracks in ``source`` (deleted ones skipped).

    New files not yet added but not ignored count too, so a stage file created before its
    ``git add`` is tested as it will be committed; ignored files (the venv, DVC outputs and
    caches) never are. A clean clone (CI) has no such files.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        check=True,
    ).stdout.decode()
    names = [name for name in listed.split("\0") if name]
    assert names, f"git ls-files found nothing in {source}"
    for name in names:
        src = source / name
        if not src.exists() and not src.is_symlink():
            continue
        dst = target / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)


def git_clone(origin: Repo, target: Path) -> Repo:
    """A clone: the committed files only, no DVC outputs and an empty DVC cache."""
    subprocess.run(
        ["git", "clone", "-q", str(origin.root), str(target)],
        check=True,
        capture_output=True,
        env=base_env(origin.root),
    )
    repo = Repo(target)
    configure_git(repo)
    return repo


def copy_workspace(origin: Repo, target: Path) -> Repo:
    """A copy of the whole workspace: git history, DVC outputs and DVC cache."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        if here == origin.root / ".dvc":
            return {"tmp"} & set(names)  # locks and the experiments queue belong to origin
        if here == origin.root:
            return {"dvc_plots"} & set(names)
        return set()

    shutil.copytree(origin.root, target, symlinks=True, ignore=ignore)
    return Repo(target)


@dataclass(frozen=True)
class FirstRepro:
    """What the first `dvc repro` of the fresh copy did, recorded before anything else ran."""

    result: Result
    committed_lock: str
    lock_after: str
    status_after: list[str]


@dataclass(frozen=True)
class Origin:
    repo: Repo
    first_repro: FirstRepro


def ran_stages(output: str) -> list[str]:
    """Stages that `dvc repro`/`dvc exp run` ran, from their "Running stage 'x':" lines."""
    return [s for s in STAGES if f"Running stage '{s}'" in output]


def experiments_by_name(repo: Repo) -> dict[str, dict[str, Any]]:
    """Each experiment's ``data`` (params, metrics) from `dvc exp show --json`, by name."""
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    found = {}
    for baseline in shown:
        for group in baseline.get("experiments") or []:
            for rev in group["revs"]:
                found[rev["name"]] = rev["data"]
    return found


def param(data: dict[str, Any], dotted: str) -> Any:
    node = data["params"]["params.yaml"]["data"]
    for part in dotted.split("."):
        node = node[part]
    return node


def metric(data: dict[str, Any], path: str, key: str) -> Any:
    return data["metrics"][path]["data"][key]


def wait_for_queue(repo: Repo, names: list[str], timeout: float = 300) -> str:
    """Poll `dvc queue status` until every experiment in ``names`` left Queued/Running."""
    deadline = time.monotonic() + timeout
    while True:
        status = repo.dvc("queue", "status").stdout
        lines = {name: line for line in status.splitlines() for name in names if name in line}
        pending = [n for n in names if n not in lines or re.search(r"Queued|Running", lines[n])]
        if not pending:
            return status
        if time.monotonic() > deadline:
            logs = "\n".join(repo.dvc("queue", "logs", n, check=False).output for n in pending)
            pytest.fail(f"experiments still pending after {timeout:.0f} s:\n{status}\n{logs}")
        time.sleep(2)


def stop_queue_workers(repo: Repo) -> None:
    """Stop the celery workers `dvc queue start` left in ``repo``, so no process outlives a test.

    ``--kill`` ends experiments still running (only after a failed or timed-out test); a worker
    that does not exit by itself gets SIGTERM, found by the pid files of this repository's queue.
    """
    repo.dvc("queue", "stop", "--kill", check=False, timeout=60)
    deadline = time.monotonic() + 20
    for pid_file in (repo.root / ".dvc" / "tmp" / "exps" / "celery").glob("*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        while _is_queue_worker(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _is_queue_worker(pid):
            os.kill(pid, signal.SIGTERM)


def _is_queue_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "dvc" in cmdline and "queue-worker" in cmdline
