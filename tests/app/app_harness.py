"""What the app's tests share: a trained project (``serve_harness.build_project``) made a DVC
repository with a drift report and a metrics history, to be served by ``mlrepo serve`` on
127.0.0.1 with a SQLite prediction log; the app is pointed at it through its environment."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import yaml
from serve_harness import Project, Server

from mlrepo.io import file_md5, write_json

APP = Path(__file__).parents[2] / "src" / "mlrepo" / "app" / "main.py"
BIN = Path(sys.executable).parent
TRAIN = "data/split/train.parquet"


@dataclass(frozen=True)
class Served:
    project: Project
    server: Server
    database_url: str
    accuracy: float  # in the workspace's metrics/evaluate.json, which the service reports

    @property
    def root(self) -> Path:
        return self.project.root

    def env(self) -> dict[str, str]:
        return {
            "MLREPO_SERVICE_URL": self.server.url,
            "DATABASE_URL": self.database_url,
            "MLREPO_PROJECT": str(self.root),
        }


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def prepare(project: Project) -> float:
    """Held-out accuracy in metrics/evaluate.json, a training table the drift check can use
    (recorded in dvc.lock, as the registry requires), a drift report by the monitor stage,
    and a DVC repository whose workspace metrics differ from its commit's."""
    root = project.root
    pipeline = joblib.load(root / "models" / "model.joblib")
    predicted = pipeline.predict(project.features)
    accuracy = float(np.mean(predicted == project.test["target"].to_numpy()))
    evaluate = {"accuracy": accuracy, "min_accuracy": 0.5, "promotable": accuracy >= 0.5}
    write_json(evaluate, root / "metrics" / "evaluate.json")
    (root / "data" / "split").mkdir(parents=True)
    project.test.to_parquet(root / TRAIN, index=False)
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    outs = [{"path": TRAIN, "md5": file_md5(root / TRAIN)}]
    lock["stages"]["featurize"] = {"cmd": "tests", "outs": outs}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock), encoding="utf-8")
    (root / "params.yaml").write_text("train:\n  seed: 1\n", encoding="utf-8")
    (root / "dvc.yaml").write_text(
        "stages: {}\nparams:\n  - params.yaml\nmetrics:\n  - metrics/evaluate.json\n",
        encoding="utf-8",
    )
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=root, check=True, capture_output=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "evaluated, with its training data")
    shifted = project.features.copy()
    numeric = shifted.select_dtypes("number").columns
    shifted[numeric] = shifted[numeric] + 3.0
    shifted.to_parquet(root / "data" / "shifted.parquet", index=False)
    subprocess.run(
        [sys.executable, "-m", "mlrepo.stages.monitor", "--reference", TRAIN,
         "--current", "data/shifted.parquet", "--model", "models/model.joblib",
         "--meta", "models/model.json", "--metrics", "metrics/drift.json",
         "--result", "reports/drift.json", "--report", "reports/drift.md",
         "--plots", "reports/drift_plots"],
        cwd=root, check=True, capture_output=True,
    )  # fmt: skip
    # A workspace that differs from the commit: `dvc exp show` lists both.
    served = round(accuracy - 0.05, 6)
    write_json({**evaluate, "accuracy": served}, root / "metrics" / "evaluate.json")
    (root / "params.yaml").write_text("train:\n  seed: 2\n", encoding="utf-8")
    return served


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")
