"""The shared DVC remote: push with the run cache, a second clone pulls and runs nothing.

Against the default remote of .dvc/config (a directory beside the repository) and against a
real S3-compatible server (moto_server on 127.0.0.1, started here) through dvc-s3.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dvc_harness import (
    UP_TO_DATE,
    VENV_BIN,
    Origin,
    Repo,
    base_env,
    copy_workspace,
    git_clone,
    ran_stages,
)

pytestmark = pytest.mark.dvc

OUTPUTS = ("models/model.joblib", "models/model.json", "models/model.onnx", "data/raw.parquet")
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def make(repo: Repo, target: str, *args: str) -> str:
    """A Makefile target in the copy, with the project's venv (the copy has none of its own)."""
    result = repo.run(
        "make", f"BIN={VENV_BIN}", "-o", ".venv/.installed", target, *args, timeout=300
    )
    return result.output


def assert_pulled_without_running(clone: Repo, origin: Repo) -> None:
    for name in OUTPUTS:
        assert clone.path(name).read_bytes() == origin.path(name).read_bytes(), name
    assert UP_TO_DATE in clone.dvc("status").output
    repro = clone.dvc("repro")
    assert ran_stages(repro.output) == [], repro.describe()


def test_make_pull_in_a_second_clone_gets_every_output_without_training(
    origin: Origin, tmp_path: Path
) -> None:
    # Both under tmp_path: the default remote (../mlrepo-remote) is the same directory for both.
    workspace = copy_workspace(origin.repo, tmp_path / "workspace")
    remote = workspace.dvc("remote", "list").stdout
    assert re.search(r"^local\s+\S*mlrepo-remote\s+\(default\)", remote, re.M), remote
    pushed = make(workspace, "push")
    assert "pushed" in pushed, pushed
    assert (tmp_path / "mlrepo-remote" / "runs").is_dir(), "the run cache was not pushed"

    clone = git_clone(origin.repo, tmp_path / "clone")
    assert not clone.path("models/model.joblib").exists()
    make(clone, "pull")
    assert_pulled_without_running(clone, workspace)


def test_a_second_clone_restores_a_stage_another_clone_ran_from_the_run_cache(
    origin: Origin, tmp_path: Path
) -> None:
    # One clone runs a params change nobody committed and pushes; another, making the same
    # change, gets train's and export's outputs from the run cache instead of running them.
    first = copy_workspace(origin.repo, tmp_path / "first")
    change = {"train.random_forest.n_estimators": 50}
    first.set_params(change)
    ran = first.dvc("repro").output
    assert "Running stage 'train'" in ran, ran
    pushed = make(first, "push")
    assert re.search(r"[1-9]\d* object\(s\) of \d+ run-cache entries pushed", pushed), pushed

    second = git_clone(origin.repo, tmp_path / "second")
    make(second, "pull")
    second.set_params(change)
    repro = second.dvc("repro", "--pull").output
    for stage in ("train", "export"):
        assert f"Stage '{stage}' is cached - skipping run" in repro, repro
        assert f"Running stage '{stage}'" not in repro, repro
    for name in ("models/model.joblib", "models/model.onnx", "metrics/train.json"):
        assert second.path(name).read_bytes() == first.path(name).read_bytes(), name
    # DVC keeps no run-cache entry for a stage with a `cache: false` output that is neither a
    # metric nor a plot (evaluate's plot files are plain outs, monitor's reports too).
    assert "Running stage 'evaluate'" in repro, repro
    assert UP_TO_DATE in second.dvc("status").output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with an empty bucket ``mlrepo``; stopped afterwards."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with (tmp_path / "moto.log").open("wb") as log:
        server = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
        deadline = time.monotonic() + 60
        while True:
            try:
                s3.create_bucket(Bucket="mlrepo")
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


def use_s3(repo: Repo, endpoint: str) -> None:
    """The S3 remote as README documents it, in the clone's own .dvc/config.local."""
    repo.dvc("remote", "add", "--local", "-d", "s3", "s3://mlrepo/dvc")
    repo.dvc("remote", "modify", "--local", "s3", "endpointurl", endpoint)


def test_s3_remote_push_then_clone_pulls_and_is_clean(
    origin: Origin, tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)  # inherited by every dvc the harness runs
    workspace = copy_workspace(origin.repo, tmp_path / "workspace")
    use_s3(workspace, s3_endpoint)
    pushed = workspace.run(VENV_BIN / "dvc", "push", "--run-cache", env=base_env(workspace.root))
    assert "pushed" in pushed.output, pushed.describe()
    keys = [
        item["Key"]
        for item in boto3.client("s3", endpoint_url=s3_endpoint, **_boto_credentials())
        .list_objects_v2(Bucket="mlrepo")
        .get("Contents", [])
    ]
    assert any(k.startswith("dvc/files/md5/") for k in keys), keys
    assert any(k.startswith("dvc/runs/") for k in keys), keys
    assert not (tmp_path / "mlrepo-remote").exists(), "pushed to the local remote instead"

    clone = git_clone(origin.repo, tmp_path / "clone")
    use_s3(clone, s3_endpoint)
    clone.dvc("pull", "--run-cache")
    assert_pulled_without_running(clone, workspace)
