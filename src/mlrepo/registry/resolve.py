"""A reference -> the model's verified bytes; nothing is deserialized here."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from mlrepo.artifacts import DRIFT_FILE, MODEL_FILES, OPTIONAL_ROLES
from mlrepo.bundle import (
    ModelBundle,
    ModelIntegrityError,
    read_drift,
    read_workspace_bundle,
    verify,
)
from mlrepo.errors import MlrepoError
from mlrepo.registry.refs import Target, find
from mlrepo.registry.snapshot import LOCK, cached_bytes
from mlrepo.registry.tags import ARTIFACT


def resolve(ref: str | None = None, root: str | Path = ".") -> ModelBundle:
    """The files of the model ``ref`` names, each checked against its revision's dvc.lock.

    ``ref`` None is the production model. For a git revision (a stage, a version, a sha...)
    the bytes come from the DVC cache, or the workspace when its md5 is the recorded one; for
    ``workspace`` or a folder, from that working tree. A file whose md5 differs from dvc.lock
    raises ``ModelIntegrityError`` before anyone can unpickle it.
    """
    target = find(ref, Path(root))
    if target.snapshot.sha is None:
        return replace(read_workspace_bundle(target.snapshot.root), source=target.label)
    return read_bundle(target)


def read_bundle(target: Target) -> ModelBundle:
    """The verified model files of a target at a git commit."""
    snapshot = target.snapshot
    md5s = snapshot.md5s()
    where = f"{target.label} {LOCK}"
    files: dict[str, bytes] = {}
    for role, path in MODEL_FILES.items():
        if path not in md5s and role in OPTIONAL_ROLES:
            continue  # e.g. a version from before the export stage
        files[role] = read_verified(
            target,
            path,
            role,
            md5s,
            unhashed=", so that commit holds no reproduced model. Fix: run `dvc repro`, "
            f"commit {LOCK} and register that commit",
            uncached="`dvc fetch --all-tags` downloads every registered version from the DVC "
            f"remote, or rebuild it: `git checkout {snapshot.sha} && dvc repro`",
        )
    return ModelBundle(
        files=files,
        metadata=json.loads(files["metadata"]),
        metrics=snapshot.metrics(),
        drift=read_drift(snapshot.read(DRIFT_FILE), md5s, where),
        name=ARTIFACT,
        version=target.version.version if target.version else None,
        stage=target.stage or (", ".join(target.stages) or None),
        rev=snapshot.sha,
        source=target.label,
    )


def read_verified(
    target: Target, path: str, role: str, md5s: dict[str, str], *, unhashed: str, uncached: str
) -> bytes:
    """The bytes of ``path`` at ``target``'s commit (DVC cache, or the workspace when its md5 is
    the recorded one), checked against that commit's dvc.lock before anyone reads them.

    ``unhashed`` ends the message when dvc.lock records no hash for ``path``; ``uncached`` is
    the fix when the bytes are nowhere here.
    """
    where = f"{target.label} {LOCK}"
    md5 = md5s.get(path)
    if md5 is None:
        raise ModelIntegrityError(f"{where}: records no hash for {path}{unhashed}")
    data = cached_bytes(target.snapshot, path, md5)
    if data is None:
        raise MlrepoError(
            f"{target.label}: {path} (md5 {md5}) is neither in the DVC cache nor in the "
            f"workspace. Fix: {uncached}"
        )
    verify(role, path, data, md5s, where)  # the bytes are trusted only after this
    return data
