"""The registry's records: GTO's annotated git tags, read and written through ``gto.api``.

``model@v1.2.0`` registers a version at a commit; ``model#production#N`` assigns a stage. GTO
works from the tags alone (no ``artifacts.yaml`` is needed: ``dvc.yaml``'s ``artifacts:`` names
the model for DVC, the tags carry every version and stage). A stage belongs to the version
most recently assigned to it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from gto import api
from gto.constants import VersionSort
from gto.exceptions import ArtifactNotFound, GTOException
from gto.versions import SemVer
from scmrepo.exceptions import SCMError

from mlrepo.errors import MlrepoError
from mlrepo.registry.snapshot import check_project

ARTIFACT = "model"
STAGES = ("staging", "production")
ALIASES = {"champion": "production", "challenger": "staging"}
Bump = Literal["major", "minor", "patch"]
FIRST = {"major": "v1.0.0", "minor": "v0.1.0", "patch": "v0.0.1"}


@dataclass(frozen=True)
class Version:
    """A registered version of the model, with the stages it currently holds."""

    version: str
    sha: str
    stages: tuple[str, ...]
    created_at: datetime
    author: str
    tag: str


@contextmanager
def gto_errors(action: str) -> Iterator[None]:
    """Report GTO's and git's refusals as one-line user errors."""
    try:
        yield
    except GTOException as exc:
        raise MlrepoError(f"{action}: {exc.msg}") from None
    except SCMError as exc:
        raise MlrepoError(
            f"{action}: git failed: {exc}. If git has no identity for the tag's author, set it: "
            "`git config user.name NAME` and `git config user.email EMAIL`"
        ) from None


def versions(root: str | Path) -> list[Version]:
    """Every active registered version, newest (highest semantic version) first."""
    root = check_project(root)  # before GTO, which would try to clone a path it cannot find
    with gto_errors("reading the registry's git tags"):
        try:
            found = api.show(root, ARTIFACT, registered_only=True, sort=VersionSort.Timestamp)
        except ArtifactNotFound:
            return []
    listed = [
        Version(
            version=v["version"],
            sha=v["commit_hexsha"],
            stages=tuple(sorted({s["stage"] for s in v["stages"]})),
            created_at=v["created_at"],
            author=v["author"],
            tag=v["ref"],
        )
        for v in found
        if SemVer.is_valid(v["version"])
    ]
    return sorted(listed, key=lambda v: SemVer(v.version), reverse=True)


def in_stage(listed: list[Version], stage: str) -> Version | None:
    return next((v for v in listed if stage in v.stages), None)


def register(root: Path, sha: str, bump: Bump | None, version: str | None) -> str:
    """Create the ``model@vX.Y.Z`` tag at ``sha``: ``version``, or the latest bumped; the tag."""
    if version is None and bump is not None and not versions(root):
        version = FIRST[bump]  # GTO refuses to bump when there is nothing to bump yet
    with gto_errors(f"registering commit {sha[:7]}"):
        event = api.register(
            root,
            ARTIFACT,
            sha,
            version=version,
            bump_major=bump == "major" and version is None,
            bump_minor=bump == "minor" and version is None,
            bump_patch=bump == "patch" and version is None,
        )
    tag: str = event.tag
    return tag


def assign(root: Path, version: str, stage: str) -> str:
    """Create the ``model#stage#N`` tag assigning ``stage`` to ``version``; the tag."""
    _after_last_event(root)
    with gto_errors(f"promoting {version} to {stage}"):
        event = api.assign(root, ARTIFACT, stage, version=version)
    tag: str = event.tag
    return tag


def events(root: str | Path) -> list[dict[str, Any]]:
    """Registrations and stage assignments, newest first, as GTO reads them from the tags."""
    root = check_project(root)
    with gto_errors("reading the registry's history"):
        try:
            found = api.history(root, ARTIFACT)
        except ArtifactNotFound:
            return []
    return [dict(e) for e in found]


def _after_last_event(root: Path) -> None:
    # Tag times have one-second resolution and GTO orders a stage's assignments by time: wait
    # out the second of the newest event so this assignment is unambiguously the latest.
    newest = max((e["timestamp"] for e in events(root)), default=None)
    now = datetime.now(UTC)
    if newest == now.replace(microsecond=0):
        time.sleep(1.01 - now.microsecond / 1e6)
