"""The artifact file names come from dvc.yaml's stage commands and outputs, nowhere else."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlrepo import artifacts
from mlrepo.errors import MlrepoError

PROJECT = Path(__file__).resolve().parents[2]


def test_the_names_are_the_outputs_dvc_yaml_declares() -> None:
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text("utf-8"))["stages"]
    assert artifacts.MODEL_FILES["pipeline"] in artifacts.stage_outputs(stages["train"])
    assert artifacts.MODEL_FILES["onnx"] in artifacts.stage_outputs(stages["export"])
    assert artifacts.TRAINING_TABLE in artifacts.stage_outputs(stages["featurize"])
    assert artifacts.DRIFT_FILE in artifacts.stage_outputs(stages["monitor"])
    assert artifacts.TRAINING_TABLE == "data/split/train.parquet"
    assert artifacts.METRICS_FILES["evaluate"] == "metrics/evaluate.json"


def _pipeline(tmp_path: Path, cmd: str, outs: list[str]) -> Path:
    path = tmp_path / "dvc.yaml"
    path.write_text(yaml.safe_dump({"stages": {"train": {"cmd": cmd, "outs": outs}}}), "utf-8")
    return path


def test_a_path_is_read_from_the_command_and_checked_against_the_outs(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, "python -m x --model=m/a.joblib --meta m/a.json", ["m/a.json"])
    assert artifacts.output("train", "--meta", path) == "m/a.json"
    with pytest.raises(MlrepoError, match="stage 'train' must give its command the option --model"):
        artifacts.output("train", "--model", path)  # given, but not declared as an output
    with pytest.raises(MlrepoError, match=r"--metrics given: None"):
        artifacts.output("train", "--metrics", path)
    with pytest.raises(MlrepoError, match="stage 'evaluate'"):
        artifacts.output("evaluate", "--metrics", path)


def test_a_missing_dvc_yaml_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MlrepoError, match=r"dvc\.yaml: not found"):
        artifacts.output("train", "--model", tmp_path / "dvc.yaml")
