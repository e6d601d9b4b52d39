"""The project as it was at one git commit, or as it is in a working tree.

Git-tracked files (``dvc.lock``, metrics, ``params.yaml``) come from ``git show``; the model's
bytes, which DVC tracks, come from the DVC cache (or a workspace copy with the recorded md5).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, get_args

import yaml

from mlrepo.artifacts import METRICS_FILES
from mlrepo.bundle import locked_md5s
from mlrepo.errors import MlrepoError
from mlrepo.hyperparams import ModelName

LOCK = "dvc.lock"


def git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)


def check_project(root: str | Path) -> Path:
    """``root`` as a Path, or a clear error if it is not a folder inside a git repository."""
    root = Path(root)
    if not root.is_dir():
        raise MlrepoError(f"{root}: no such project folder")
    if git(root, "rev-parse", "--git-dir").returncode != 0:
        raise MlrepoError(
            f"{root}: not a git repository; the registry keeps versions as git tags, so the "
            "project must be a git clone (`git init` and commit it first)"
        )
    return root


def commit_of(root: Path, rev: str) -> str | None:
    """The full sha of the commit ``rev`` names (sha, branch, tag, HEAD~1...), or None."""
    if rev.startswith("-"):
        return None
    done = git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    return done.stdout.decode().strip() if done.returncode == 0 else None


@dataclass(frozen=True)
class Snapshot:
    """The project files at commit ``sha`` of the repository at ``root``; sha None = ``root``."""

    root: Path
    sha: str | None = None

    @property
    def label(self) -> str:
        return f"commit {self.sha[:7]}" if self.sha else f"workspace {self.root}"

    def read(self, path: str) -> bytes | None:
        """A file's bytes as git recorded them at ``sha`` (or on disk), None if it is absent."""
        if self.sha is None:
            full = self.root / path
            return full.read_bytes() if full.is_file() else None
        # "./" makes the path relative to root, which may be a subfolder of the repository.
        done = git(self.root, "show", f"{self.sha}:./{path}")
        return done.stdout if done.returncode == 0 else None

    @cached_property
    def lock_text(self) -> str:
        data = self.read(LOCK)
        if data is None:
            raise MlrepoError(
                f"{self.label}: has no {LOCK}, so it holds no reproduced model. Fix: run "
                f"`dvc repro` and commit {LOCK} with the metrics"
            )
        return data.decode("utf-8")

    def md5s(self) -> dict[str, str]:
        """Path -> md5 of every stage output recorded in this snapshot's dvc.lock."""
        return locked_md5s(self.lock_text)

    def metrics(self) -> dict[str, Any]:
        """Metrics file role -> parsed JSON, for the metrics files present (git-tracked)."""
        found = {}
        for role, path in METRICS_FILES.items():
            data = self.read(path)
            if data is not None:
                found[role] = json.loads(data)
        return found

    def params(self, stage: str | None = None) -> dict[str, Any]:
        """The params the stages (or one stage) ran with, as dvc.lock recorded them, by dotted
        key: exactly what produced this model, unlike params.yaml which may have moved on."""
        flat: dict[str, Any] = {}
        for name, entry in self._stages().items():
            if stage is None or name == stage:
                for key, value in ((entry.get("params") or {}).get("params.yaml") or {}).items():
                    _flatten(key, value, flat)
        # train depends on the whole train section, every model's included; only the section
        # of the model it trained made this model.
        chosen = flat.get("train.model")
        unused = tuple(f"train.{name}." for name in get_args(ModelName) if name != chosen)
        return dict(sorted((k, v) for k, v in flat.items() if not k.startswith(unused)))

    def dep_md5(self, stage: str, path: str) -> str | None:
        """The md5 dvc.lock recorded for ``path`` as a dependency of ``stage``."""
        for dep in self._stages().get(stage, {}).get("deps") or []:
            if dep.get("path") == path:
                return str(dep.get("md5"))
        return None

    def _stages(self) -> dict[str, Any]:
        stages: dict[str, Any] = (yaml.safe_load(self.lock_text) or {}).get("stages") or {}
        return stages


def _flatten(key: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for child, inner in value.items():
            _flatten(f"{key}.{child}", inner, into)
    else:
        into[key] = value


def cached_bytes(snapshot: Snapshot, path: str, md5: str) -> bytes | None:
    """The bytes of ``path`` at ``snapshot`` whose md5 dvc.lock recorded, from where DVC keeps them.

    The DVC cache first (content-addressed by md5, so it holds every reproduced version); then
    the workspace copy, but only when its md5 is the recorded one (it usually holds another
    version). None when neither has it. The caller still verifies the bytes before use: the
    cache can be tampered with too.
    """
    cache_file = Path(_cache_dir(snapshot.root.resolve())) / md5[:2] / md5[2:]
    if cache_file.is_file():
        return cache_file.read_bytes()
    workspace = snapshot.root / path
    if workspace.is_file():
        data = workspace.read_bytes()
        if hashlib.md5(data).hexdigest() == md5:
            return data
    return None


@cache
def _cache_dir(root: Path) -> str:
    """DVC's file cache folder for the project (``.dvc/cache/files/md5`` unless configured)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    # Asked from DVC itself, so `dvc cache dir` / cache.dir settings are honoured.
    try:
        with Repo(str(root)) as repo:
            path: str = repo.cache.repo.path
    except NotDvcRepoError:
        raise MlrepoError(f"{root}: not a DVC project (no .dvc folder)") from None
    return path
