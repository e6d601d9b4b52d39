"""Warm stages (mlrepo.launcher): a fork of the warm server writes a cold process's bytes, and
runs cold, passes exit codes and signals through, exactly as a stage's own process would."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from dvc_harness import VENV_BIN, Repo, base_env

from mlrepo.artifacts import stage_outputs

pytestmark = pytest.mark.dvc

PYTHON = str(VENV_BIN / "python")


MALFORMED_REQUESTS = """
import json, socket
from mlrepo import launcher
for payload in (b"not json", b"[1, 2]", json.dumps({"op": "run", "stage": "train"}).encode()):
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.connect(launcher.address())
        sock.send(payload)
        print(json.loads(sock.recv(65536))["refused"].split()[0])
"""


def status(repo: Repo) -> dict[str, Any] | None:
    """The server's status (waits while it imports), or None when none runs for the repo."""
    result = repo.run(PYTHON, "-m", "mlrepo.launcher", "status")
    text = result.stdout.strip()
    return None if text.startswith("no warm") else json.loads(text)


def wait_for_server(repo: Repo, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = status(repo)
        if reply is not None:
            return reply
        time.sleep(0.2)
    pytest.fail(f"no warm stage server came up in {repo.root} within {timeout:.0f} s")


def stage_argv(repo: Repo, stage: str) -> list[str]:
    """The stage's command from dvc.yaml, run with the venv's python."""
    command = yaml.safe_load(repo.path("dvc.yaml").read_text("utf-8"))["stages"][stage]["cmd"]
    tokens = shlex.split(" ".join(command.split()))
    assert tokens[:3] == ["python", "-m", "mlrepo.run"], tokens
    return [PYTHON, *tokens[1:]]


def output_files(repo: Repo) -> dict[str, bytes]:
    """Every output dvc.yaml declares (outs, metrics; directories walked), by path."""
    stages = yaml.safe_load(repo.path("dvc.yaml").read_text("utf-8"))["stages"]
    found: dict[str, bytes] = {}
    for stage in stages.values():
        for name in stage_outputs(stage):
            path = repo.path(name)
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for file in files:
                found[str(file.relative_to(repo.root))] = file.read_bytes()
    return found


@pytest.fixture
def warm_repo(workspace: Repo) -> Iterator[Repo]:
    """``workspace``, its warm server stopped when the test ends."""
    yield workspace
    workspace.run(PYTHON, "-m", "mlrepo.launcher", "stop")


@pytest.fixture
def warm_fresh_repo(fresh_repo: Repo) -> Iterator[Repo]:
    yield fresh_repo
    fresh_repo.run(PYTHON, "-m", "mlrepo.launcher", "stop")


def test_warm_stages_write_the_bytes_of_cold_ones(warm_fresh_repo: Repo) -> None:
    repo = warm_fresh_repo
    cold_env = base_env(repo.root) | {"MLREPO_WARM": "0"}
    cold = repo.run(str(VENV_BIN / "dvc"), "repro", "--force", env=cold_env)
    assert status(repo) is None, "MLREPO_WARM=0 must not start a server"
    cold_outputs = output_files(repo)

    warm = repo.dvc("repro", "--force")
    reply = status(repo)
    assert reply is not None, warm.describe()
    # The first stage started the server and ran cold; each later one was a fork of it.
    ran = re.findall(r"Running stage '(\w+)'", warm.output)
    assert len(ran) == 8 and ran == re.findall(r"Running stage '(\w+)'", cold.output)
    assert reply["served"] == len(ran) - 1, (reply, warm.output)
    warm_outputs = output_files(repo)
    assert sorted(warm_outputs) == sorted(cold_outputs)
    differ = [path for path in cold_outputs if cold_outputs[path] != warm_outputs[path]]
    assert differ == [], f"warm stages wrote other bytes than cold ones: {differ}"
    assert repo.git("status", "--porcelain").stdout == ""


def test_exit_code_and_user_error_pass_through_a_fork(warm_repo: Repo) -> None:
    repo = warm_repo
    repo.run(*stage_argv(repo, "batches"))  # starts the server
    before = wait_for_server(repo)["served"]

    bad = repo.run(
        PYTHON, "-m", "mlrepo.run", "validate", "--data", "missing.parquet", "--out", "v.parquet",
        "--schema", "s.json", "--report", "r.json", check=False,
    )  # fmt: skip
    assert bad.returncode == 2, bad.describe()
    assert "error: missing.parquet" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert not repo.path("v.parquet").exists()
    assert status(repo)["served"] == before + 1  # type: ignore[index]

    # A malformed request gets a refusal, and the server goes on serving.
    garbage = repo.run(PYTHON, "-c", MALFORMED_REQUESTS)
    assert garbage.stdout.split() == ["malformed", "malformed", "malformed"], garbage.describe()
    assert status(repo)["served"] == before + 1  # type: ignore[index]

    typo = repo.run(PYTHON, "-m", "mlrepo.run", "valdate", check=False)
    assert typo.returncode == 2
    assert "'valdate' is not a stage" in typo.stderr and "validate" in typo.stderr, typo.stderr


def test_changed_environment_or_source_runs_cold(warm_repo: Repo) -> None:
    repo = warm_repo
    argv = stage_argv(repo, "batches")
    repo.run(*argv)
    first = wait_for_server(repo)
    repo.run(*argv)
    assert status(repo) == first | {"served": first["served"] + 1}

    # Thread counts are read when a library loads: a fork would not honour a new value. The
    # stage runs cold; the idle server makes way for one started with the new environment.
    other_env = base_env(repo.root) | {"OMP_NUM_THREADS": "1"}
    other = repo.run(*argv, env=other_env)
    assert other.returncode == 0
    second = wait_for_server(repo)
    assert second["pid"] != first["pid"] and second["served"] == 0, (first, second)
    repo.run(*argv, env=other_env)
    assert status(repo) == second | {"served": 1}

    # A changed mlrepo module: the server must not run its stale copy. The stage runs cold, the
    # old server exits and a new one starts.
    module = repo.path("src/mlrepo/stages/batches.py")
    module.write_text(module.read_text("utf-8") + "\n# changed\n", encoding="utf-8")
    changed = repo.run(*argv, env=other_env)
    assert changed.returncode == 0, changed.describe()
    third = wait_for_server(repo)
    assert third["pid"] != second["pid"] and third["served"] == 0, (second, third)
    assert repo.git("status", "--porcelain", "data").stdout == ""


def test_a_bad_idle_setting_is_named_and_stages_run_cold(warm_repo: Repo) -> None:
    env = base_env(warm_repo.root) | {"MLREPO_WARM_IDLE_S": "soon"}
    result = warm_repo.run(*stage_argv(warm_repo, "batches"), env=env)
    assert "MLREPO_WARM_IDLE_S='soon' is not a number of seconds" in result.stderr, result.stderr
    assert status(warm_repo) is None


def _start_long_generate(repo: Repo) -> subprocess.Popen[bytes]:
    """A generate that runs for seconds, forked from the warm server."""
    repo.run(*stage_argv(repo, "batches"))
    wait_for_server(repo)
    repo.set_params({"generate.n_samples": 3_000_000, "generate.n_features": 40})
    caller = subprocess.Popen(
        [*stage_argv(repo, "generate")[:-1], str(repo.path("big.parquet"))],
        cwd=repo.root,
        env=base_env(repo.root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while status(repo)["running"] != 1:  # type: ignore[index]
        assert time.monotonic() < deadline and caller.poll() is None, "generate did not start"
        time.sleep(0.1)
    return caller


def _wait_until_no_stage_runs(repo: Repo) -> None:
    deadline = time.monotonic() + 30
    while status(repo)["running"] != 0:  # type: ignore[index]
        assert time.monotonic() < deadline, "the forked stage outlived its caller"
        time.sleep(0.1)


def test_signal_to_the_caller_reaches_the_stage(warm_repo: Repo) -> None:
    caller = _start_long_generate(warm_repo)
    caller.send_signal(signal.SIGTERM)
    assert caller.wait(timeout=30) == -signal.SIGTERM  # ended by the signal, as a stage would
    _wait_until_no_stage_runs(warm_repo)
    assert not warm_repo.path("big.parquet").exists()


def test_kill_9_of_the_caller_ends_the_stage(warm_repo: Repo) -> None:
    caller = _start_long_generate(warm_repo)
    caller.kill()
    caller.wait(timeout=30)
    _wait_until_no_stage_runs(warm_repo)
    assert not warm_repo.path("big.parquet").exists()


def test_a_dead_server_fails_the_stage_once_its_fork_has_ended(warm_repo: Repo) -> None:
    caller = _start_long_generate(warm_repo)
    server_pid = status(warm_repo)["pid"]  # type: ignore[index]
    os.kill(server_pid, signal.SIGKILL)
    _, stderr = caller.communicate(timeout=120)
    # No exit status can come any more: the caller waited for the stage and reports a failure.
    assert caller.returncode == 1, stderr
    assert b"the warm stage server ended before the stage did" in stderr
    assert status(warm_repo) is None
