"""What a model reference names: a stage, a version, a git revision, the workspace or a folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gto.constants import parse_shortcut
from gto.versions import SemVer

from mlrepo.errors import MlrepoError
from mlrepo.registry import tags
from mlrepo.registry.snapshot import Snapshot, commit_of
from mlrepo.registry.tags import ALIASES, ARTIFACT, Version

WORKSPACE = "workspace"
LATEST = "latest"


@dataclass(frozen=True)
class Target:
    """A project snapshot a reference resolved to, with its registered version if it has one."""

    ref: str
    snapshot: Snapshot
    version: Version | None = None
    stage: str | None = None  # the stage the reference named, if it named one

    @property
    def label(self) -> str:
        """How messages name it, e.g. ``champion (model@v1.2.0, commit 1a2b3c4)``."""
        if self.snapshot.sha is None:
            return self.snapshot.label
        parts = [self.snapshot.label]
        if self.version and self.version.version not in self.ref:
            parts.insert(0, f"{ARTIFACT}@{self.version.version}")
        return f"{self.ref} ({', '.join(parts)})"

    @property
    def stages(self) -> tuple[str, ...]:
        return self.version.stages if self.version else ()


def find(ref: str | None, root: Path) -> Target:
    """Resolve ``ref`` (None: the production model) to a snapshot of the project.

    Tried in order: a stage (``model#production``, ``production``, ``champion``...), a version
    (``model@v1.2.0``, ``v1.2.0``, ``latest``), ``workspace``, a project folder (one holding
    dvc.yaml), a git revision. Anything else is an error listing what exists.
    """
    ref = f"{ARTIFACT}#production" if ref is None else ref.strip()
    shortcut = parse_shortcut(ref)  # GTO's own reading of model#stage / model@version
    if shortcut.shortcut and shortcut.name != ARTIFACT:
        raise MlrepoError(
            f"unknown artifact '{shortcut.name}' in '{ref}': the registry holds '{ARTIFACT}'"
        )
    stage = shortcut.stage or (ref if ref in (*tags.STAGES, *ALIASES) else None)
    if stage:
        return _in_stage(ref, ALIASES.get(stage, stage), tags.versions(root), root)
    if shortcut.latest or ref == LATEST:
        listed = tags.versions(root)
        return _version(ref, listed[0].version if listed else None, listed, root)
    if shortcut.version or SemVer.is_valid(ref):
        return _version(ref, shortcut.version or ref, tags.versions(root), root)
    # A working tree needs no git: a deployed copy of the project is enough.
    if ref == WORKSPACE:
        return Target(ref, Snapshot(root))
    folder = Path(ref)
    if (folder / "dvc.yaml").is_file() or (folder / "dvc.lock").is_file():
        return Target(ref, Snapshot(folder))
    listed = tags.versions(root)
    sha = commit_of(root, ref)
    if sha:
        return Target(ref, Snapshot(root, sha), next((v for v in listed if v.sha == sha), None))
    raise MlrepoError(
        f"unknown model reference '{ref}'. {known(listed)} Also accepted: a git revision (sha, "
        f"branch, tag), '{WORKSPACE}', or the path of a project folder"
    )


def known(listed: list[Version]) -> str:
    """One sentence on the versions and stages that exist, for error messages."""
    if not listed:
        return "No version is registered yet (`mlrepo registry register`)."
    versions = ", ".join(
        v.version + (f" ({', '.join(v.stages)})" if v.stages else "") for v in listed
    )
    aliases = ", ".join(f"{alias} = {stage}" for alias, stage in ALIASES.items())
    return f"Registered: {versions}; stages: {', '.join(tags.STAGES)} ({aliases})."


def _in_stage(ref: str, stage: str, listed: list[Version], root: Path) -> Target:
    holder = tags.in_stage(listed, stage)
    if holder is None:
        fix = (
            f"promote a version: `mlrepo registry promote --stage {stage} {listed[0].version}`"
            if listed
            else "register one first: `mlrepo registry register`, then promote it"
        )
        raise MlrepoError(f"no model is in {stage} ('{ref}'); {fix}. {known(listed)}")
    return Target(ref, Snapshot(root, holder.sha), holder, stage)


def _version(ref: str, name: str | None, listed: list[Version], root: Path) -> Target:
    found = next((v for v in listed if v.version == name), None)
    if found is None:
        raise MlrepoError(f"no registered version '{ref}'. {known(listed)}")
    return Target(ref, Snapshot(root, found.sha), found)
