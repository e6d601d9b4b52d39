"""`dvc exp run -S train.model=xgboost`: the real pipeline trains, exports with parity and serves
the model through ONNX, and retraining reproduces dvc.lock."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dvc_harness import Repo, ran_stages

from mlrepo.bundle import read_workspace_bundle
from mlrepo.prediction.backends import load_predictor

pytestmark = pytest.mark.dvc


def test_exp_run_with_xgboost_exports_with_parity_serves_onnx_and_reproduces(
    workspace: Repo,
) -> None:
    run = workspace.dvc(
        "exp", "run", "-S", "train.model=xgboost", "-S", "train.xgboost.n_estimators=50"
    )
    assert ran_stages(run.output) == ["train", "evaluate"], run.describe()
    meta = workspace.read_json("models/model.json")
    assert meta["model"] == "xgboost" and meta["params"]["n_estimators"] == 50
    export = workspace.read_json("metrics/export.json")
    assert export["estimator"] == "XGBClassifier"
    assert export["converted"] and export["passed"], export
    assert export["label_agreement"] == 1.0 and export["predict_agreement"] == 1.0
    assert export["max_abs_proba_diff"] <= export["tolerance"]
    assert workspace.read_json("metrics/evaluate.json")["accuracy"] > 0.8

    # The batch predictor and the service load it as any model: ONNX, original labels.
    bundle = read_workspace_bundle(workspace.root)
    predictor = load_predictor(bundle, backend="onnx")
    test = pd.read_parquet(workspace.path("data/split/test.parquet"))
    sklearn = load_predictor(bundle, backend="sklearn")
    np.testing.assert_allclose(
        predictor.predict_proba(test), sklearn.predict_proba(test), rtol=0, atol=1e-5
    )

    # Retraining in a new process writes the same bytes: dvc.lock does not change.
    lock = workspace.path("dvc.lock").read_text("utf-8")
    again = workspace.dvc("repro", "--force", "--single-item", "train")
    assert "Running stage 'train'" in again.output
    assert workspace.path("dvc.lock").read_text("utf-8") == lock
