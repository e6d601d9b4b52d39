"""One model version as files: read, checked against dvc.lock, and only then deserialized.

A ``ModelBundle`` holds the raw bytes of a model's files (the scikit-learn pipeline, its ONNX
form when exported, the metadata) with what is known of the version. Its bytes are verified
against the md5 that ``dvc.lock`` recorded for them **before** anything is unpickled or loaded:
a tampered or stale file is refused with a clear error, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlrepo.artifacts import DRIFT_FILE, METRICS_FILES, MODEL_FILES, OPTIONAL_ROLES
from mlrepo.errors import MlrepoError

log = logging.getLogger("mlrepo.bundle")


class ModelIntegrityError(MlrepoError):
    """A model file does not match the md5 its revision's dvc.lock recorded."""


@dataclass(frozen=True)
class ModelBundle:
    """The verified bytes of one model version and what is known about it."""

    files: dict[str, bytes]  # role -> bytes, roles of MODEL_FILES (onnx may be absent)
    metadata: dict[str, Any]  # the parsed metadata file
    metrics: dict[str, Any] = field(default_factory=dict)  # metrics file role -> parsed JSON
    drift: dict[str, Any] | None = None  # the verified DRIFT_FILE; None when unknown
    name: str = "model"
    version: str | None = None  # registry version, e.g. v1.2.0
    stage: str | None = None  # registry stage, e.g. production
    rev: str | None = None  # git commit the files come from; None for the workspace
    source: str = "workspace"  # how the reference was resolved, for messages


def locked_md5s(lock_text: str) -> dict[str, str]:
    """Path -> md5 of every stage output recorded in a dvc.lock text."""
    lock = yaml.safe_load(lock_text) or {}
    md5s = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if "md5" in out:
                md5s[out["path"]] = out["md5"]
    return md5s


def verify(role: str, path: str, data: bytes, md5s: dict[str, str], where: str) -> None:
    """Raise ``ModelIntegrityError`` unless ``data`` has the md5 dvc.lock recorded for ``path``."""
    expected = md5s.get(path)
    if expected is None:
        raise ModelIntegrityError(
            f"{where}: dvc.lock records no hash for {path}; refusing to load an unverified "
            "model. Fix: run `dvc repro` and commit dvc.lock"
        )
    actual = hashlib.md5(data).hexdigest()
    if actual != expected:
        raise ModelIntegrityError(
            f"{where}: {path} has md5 {actual} but dvc.lock records {expected}: the file was "
            "changed after the pipeline wrote it, so it is not loaded. Fix: "
            f"`dvc checkout --force {path}` restores the recorded version (--force: DVC will not "
            "overwrite a modified file without it), or `dvc repro` rebuilds it"
        )


def read_drift(data: bytes | None, md5s: dict[str, str], where: str) -> dict[str, Any] | None:
    """The parsed drift metrics if ``data`` has the md5 dvc.lock recorded for them, else None
    (absent, unrecorded, changed or unreadable: the verdict is unknown, never an error)."""
    if data is None:
        return None
    expected = md5s.get(DRIFT_FILE)
    if expected is None or hashlib.md5(data).hexdigest() != expected:
        log.warning(
            "%s: %s does not match the md5 dvc.lock records (%s); the drift verdict is unknown. "
            "Fix: `dvc repro monitor` and commit dvc.lock with the metrics",
            where,
            DRIFT_FILE,
            expected or "none",
        )
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def read_workspace_bundle(root: str | Path = ".") -> ModelBundle:
    """The model in a project's working tree, verified against the working tree's dvc.lock."""
    root = Path(root)
    where = str(root / "dvc.lock")
    try:
        md5s = locked_md5s((root / "dvc.lock").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MlrepoError(
            f"{where}: not found; run `dvc repro` in {root} to build the model first"
        ) from None
    files: dict[str, bytes] = {}
    for role, path in MODEL_FILES.items():
        full = root / path
        if not full.exists():
            if role in OPTIONAL_ROLES:
                continue
            raise MlrepoError(f"{full}: not found; run `dvc repro` (or `dvc checkout`) first")
        data = full.read_bytes()
        verify(role, path, data, md5s, where)
        files[role] = data
    metrics = {}
    for role, path in METRICS_FILES.items():
        if (root / path).exists():
            metrics[role] = json.loads((root / path).read_text(encoding="utf-8"))
    drift_path = root / DRIFT_FILE
    drift_data = drift_path.read_bytes() if drift_path.is_file() else None
    return ModelBundle(
        files=files,
        metadata=json.loads(files["metadata"]),
        metrics=metrics,
        drift=read_drift(drift_data, md5s, where),
        source=str(root),
    )
