"""Registering a commit's model as a version, and promoting a version through the gates."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from mlrepo.artifacts import METRICS_FILES, MODEL_FILES
from mlrepo.errors import MlrepoError
from mlrepo.registry import tags
from mlrepo.registry.refs import LATEST, find
from mlrepo.registry.snapshot import LOCK, Snapshot, check_project, commit_of
from mlrepo.registry.tags import ALIASES, ARTIFACT, STAGES, Bump

MODEL = MODEL_FILES["pipeline"]
EVALUATE = METRICS_FILES["evaluate"]
QUALITY_GATE = "evaluate.min_accuracy"


class PromotionRefused(MlrepoError):
    """A version failed a promotion gate."""


@dataclass(frozen=True)
class GateFailure:
    """A promotion gate a version fails: which, why, and what fixes it."""

    gate: str
    reason: str
    fix: str


@dataclass(frozen=True)
class Registered:
    """A version just recorded, with what the user should know about it."""

    version: str
    sha: str
    tag: str
    notes: tuple[str, ...]  # e.g. that it is not promotable


@dataclass(frozen=True)
class Promoted:
    """A version just assigned a stage."""

    version: str
    sha: str
    stage: str
    tag: str


def register(
    root: str | Path = ".",
    rev: str = "HEAD",
    bump: Bump | None = None,
    version: str | None = None,
) -> Registered:
    """Register the model of commit ``rev`` as the next version (patch bump unless told).

    A version is a record: it is registered even when the model is not promotable, and the
    notes say so.
    """
    root = check_project(root)
    if bump and version:
        raise MlrepoError(f"give either a version ({version}) or a bump ({bump}), not both")
    sha = commit_of(root, rev)
    if sha is None:
        raise MlrepoError(f"'{rev}' is not a git revision of {root}; name a commit, branch or tag")
    snapshot = Snapshot(root, sha)
    model_md5 = snapshot.md5s().get(MODEL)
    if model_md5 is None:
        raise MlrepoError(
            f"{snapshot.label}: its {LOCK} records no {MODEL}, so there is no model to register. "
            f"Fix: run `dvc repro`, commit {LOCK} and the metrics, then register"
        )
    notes = []
    if sha == commit_of(root, "HEAD") and Snapshot(root).read(LOCK) != snapshot.read(LOCK):
        notes.append(
            f"{LOCK} has uncommitted changes: this registers the model committed at {sha[:7]}, "
            f"not the one in your working tree (commit {LOCK} and the metrics to version that)"
        )
    for other in tags.versions(root):
        if Snapshot(root, other.sha).md5s().get(MODEL) == model_md5:
            notes.append(f"same model bytes (md5 {model_md5}) as {other.version}")
    tag = tags.register(root, sha, bump, version)
    failure = gate_failure(snapshot)
    if failure:
        notes.append(f"not promotable: {failure.reason}")
    return Registered(tag.split("@", 1)[1], sha, tag, tuple(notes))


def promote(stage: str, ref: str | None = None, root: str | Path = ".") -> Promoted:
    """Assign ``stage`` to the version ``ref`` names (default: the latest), if it passes the gates.

    Refused with ``PromotionRefused`` naming the gate when its evaluation is missing, was not
    made on this model, or marks it not promotable (accuracy below ``evaluate.min_accuracy``).
    """
    root = check_project(root)
    stage = ALIASES.get(stage, stage)
    if stage not in STAGES:
        aliases = ", ".join(f"{a} = {s}" for a, s in ALIASES.items())
        raise MlrepoError(f"unknown stage '{stage}': use one of {', '.join(STAGES)} ({aliases})")
    target = find(ref or f"{ARTIFACT}@{LATEST}", root)
    if target.version is None:
        at = f" --rev {target.snapshot.sha[:7]}" if target.snapshot.sha else ""
        raise MlrepoError(
            f"{target.label} is not a registered version; only versions are promoted. "
            f"Fix: `mlrepo registry register{at}` first (it records the commit's model)"
        )
    version = target.version.version
    if stage in target.stages:
        raise MlrepoError(f"{ARTIFACT}@{version} is already in {stage}; nothing to do")
    failure = gate_failure(target.snapshot)
    if failure:
        raise PromotionRefused(
            f"refusing to promote {target.label} to {stage}: gate '{failure.gate}' failed: "
            f"{failure.reason}. Fix: {failure.fix}"
        )
    tag = tags.assign(root, version, stage)
    return Promoted(version, target.version.sha, stage, tag)


def gate_failure(snapshot: Snapshot) -> GateFailure | None:
    """The first promotion gate the model of ``snapshot`` fails, or None if it passes them all.

    The gates read the evaluation DVC recorded at that commit, and trust it only if its bytes
    are the ones dvc.lock recorded and it was computed on that very model.
    """
    rebuild = f"run `dvc repro` and commit {LOCK} and the metrics, then register that commit"
    md5s = snapshot.md5s()
    data = snapshot.read(EVALUATE)
    if MODEL not in md5s or data is None:
        missing = MODEL if MODEL not in md5s else EVALUATE
        return GateFailure("evaluated", f"{snapshot.label} has no {missing}", rebuild)
    if hashlib.md5(data).hexdigest() != md5s.get(EVALUATE):
        return GateFailure(
            "evaluated",
            f"{EVALUATE} at {snapshot.label} is not the one {LOCK} recorded (edited by hand?)",
            rebuild,
        )
    if snapshot.dep_md5("evaluate", MODEL) != md5s[MODEL]:
        return GateFailure(
            "evaluated", f"the evaluation at {snapshot.label} was not made on its {MODEL}", rebuild
        )
    scores = snapshot.metrics()["evaluate"]
    if not scores.get("promotable"):
        return GateFailure(
            QUALITY_GATE,
            f"accuracy {scores.get('accuracy', float('nan')):.4f} < {QUALITY_GATE} "
            f"{scores.get('min_accuracy', float('nan')):.2f} ({EVALUATE} at {snapshot.label} "
            "marks the model not promotable)",
            "improve the model and register the new commit (or, deliberately, lower "
            f"{QUALITY_GATE} in params.yaml and re-run `dvc repro`)",
        )
    return None
