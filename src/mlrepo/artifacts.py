"""The files the pipeline writes that the registry, bundle, report and monitor read, by role.

``dvc.yaml`` is the one place where paths live: each stage gets its paths as command-line
options and declares them as outputs. A role here is a stage and one of its options (the
``train`` stage's ``--meta`` is the model's metadata), so the path is read from the stage's
command and checked against the outputs the stage declares; renaming a file in ``dvc.yaml``
renames it everywhere. The ``dvc.yaml`` read is the one beside this package (the pipeline the
code belongs to); a role it no longer declares is one clear error naming the stage and option.
"""

from __future__ import annotations

import shlex
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mlrepo.errors import MlrepoError

PIPELINE = Path(__file__).resolve().parents[2] / "dvc.yaml"


def stage_outputs(stage: dict[str, Any]) -> set[str]:
    """Every path a ``dvc.yaml`` stage writes: its ``outs``, ``metrics`` and ``plots``."""
    paths = set()
    for kind in ("outs", "metrics", "plots"):
        for entry in stage.get(kind) or []:
            paths.add(entry if isinstance(entry, str) else next(iter(entry)))
    return paths


def option_value(command: str, option: str) -> str | None:
    """The value ``option`` is given in a stage command (``--meta PATH`` or ``--meta=PATH``)."""
    words = shlex.split(command)
    for i, word in enumerate(words):
        if word == option and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(f"{option}="):
            return word.split("=", 1)[1]
    return None


@cache
def _pipeline(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise MlrepoError(
            f"{path}: not found; the artifact file names are read from the pipeline's dvc.yaml, "
            "so run from a checkout of the project (pip install -e .)"
        ) from None
    return loaded if isinstance(loaded, dict) else {}


def output(stage: str, option: str, pipeline: Path = PIPELINE) -> str:
    """The path the ``dvc.yaml`` stage ``stage`` writes through its option ``option``."""
    declared = (_pipeline(pipeline).get("stages") or {}).get(stage) or {}
    value = option_value(str(declared.get("cmd") or ""), option)
    if value is None or value not in stage_outputs(declared):
        raise MlrepoError(
            f"{pipeline}: stage '{stage}' must give its command the option {option} PATH and "
            f"declare PATH among its outs/metrics ({option} given: {value}); the registry, the "
            "report and the monitor read that file. Fix: restore it in dvc.yaml"
        )
    return value


# Files of a model version, by role (what a ModelBundle holds).
MODEL_FILES = {
    "pipeline": output("train", "--model"),
    "metadata": output("train", "--meta"),
    "onnx": output("export", "--onnx"),
}
OPTIONAL_ROLES = {"onnx"}  # a version from before the export stage has no ONNX file
# Metrics a model version is judged by, by role.
METRICS_FILES = {
    "evaluate": output("evaluate", "--metrics"),
    "export": output("export", "--metrics"),
}
VALIDATION_FILE = output("validate", "--report")
DRIFT_FILE = output("monitor", "--metrics")  # the drift verdict
DRIFT_DETAIL = output("monitor", "--result")  # the per-feature result
DRIFT_REPORT = output("monitor", "--report")  # the Markdown report
# The training table a model was fitted on (the reference of drift checks).
TRAINING_TABLE = output("featurize", "--train")
PNG_PLOTS = tuple(
    output("evaluate", option) for option in ("--confusion-png", "--roc-png", "--importance-png")
)


def _check_registered(pipeline: Path = PIPELINE) -> None:
    """``dvc artifacts get`` and GTO read the model from ``artifacts.model.path``: it must be the
    file the registry verifies and loads."""
    declared = ((_pipeline(pipeline).get("artifacts") or {}).get("model") or {}).get("path")
    if declared != MODEL_FILES["pipeline"]:
        raise MlrepoError(
            f"{pipeline}: artifacts.model.path is {declared} but the train stage writes the "
            f"model to {MODEL_FILES['pipeline']}. Fix: make them the same file"
        )


_check_registered()
