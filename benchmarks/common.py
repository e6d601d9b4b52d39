"""What the benchmark scripts share: where the project and its venv are, the progress line, the
measuring parent of one command, the environment and git repository of a throwaway copy, and
the facts about the machine and the time that go next to every result.

The scripts run as ``.venv/bin/python benchmarks/<name>.py``, so this folder is first on
``sys.path`` and they import this module as ``common``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: dvc, dask and the stages' python

# Runs one command in a fresh parent, so RUSAGE_CHILDREN covers that command (and whatever it
# waited for) only; prints exit code, wall time, CPU time and peak RSS (largest single process)
# as JSON. Arguments: the log file the command's output is appended to, then the command.
# The stages' warm server (mlrepo.launcher) outlives the stage that started it and forks the
# others: the parent is a child subreaper, so the orphaned server is reparented to it; after
# the command it stops the server and reaps it, which adds the server and its forks to the
# figures (their CPU time and their peak RSS).
MEASURE = """
import ctypes, json, os, resource, subprocess, sys, time
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
with open(sys.argv[1], "ab") as log:
    start = time.perf_counter()
    code = subprocess.call(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    subprocess.call([sys.executable, "-m", "mlrepo.launcher", "stop"], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                  "maxrss_kib": usage.ru_maxrss}))
"""


@dataclass
class Measured:
    """What MEASURE reports of one command: exit code, wall and CPU seconds, peak RSS in MiB."""

    code: int
    wall: float
    cpu: float
    rss_mib: float

    @staticmethod
    def read(stdout: str) -> tuple[int, float, float, float]:
        """The four figures from MEASURE's output (its last line), in field order."""
        result = json.loads(stdout.strip().splitlines()[-1])
        return result["code"], result["wall"], result["cpu"], result["maxrss_kib"] / 1024


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def now() -> str:
    """The time a result is written, to the minute: ``2026-12-03 11:34 UTC``."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def load_text(separator: str = " ") -> str:
    """The 1, 5 and 15 minute load averages, two decimals each."""
    return separator.join(f"{x:.2f}" for x in os.getloadavg())


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo, or None where there is none."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return None
    for line in cpuinfo.read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def venv_env(**values: str) -> dict[str, str]:
    """This process's environment without a caller's venv or ``PYTHONPATH``, the venv's bin first
    on PATH (``dvc.yaml`` runs the stages as ``python -m``), and ``values`` on top."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **values}


def commit_copy(dest: Path) -> None:
    """Make ``dest`` a git repository with all its files committed (DVC works in one)."""
    command = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    command += ["-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "benchmark copy"]):
        subprocess.run([*command, *args], cwd=dest, check=True, capture_output=True)
