"""`generate.source: file`: the user's own table runs end to end by changing params only."""

from __future__ import annotations

import pandas as pd
import pytest
from dvc_harness import STAGES, UP_TO_DATE, Repo, ran_stages
from user_tables import CLASSES, good_table

pytestmark = pytest.mark.dvc

EXAMPLE = "data/external/example.csv"


def assert_multiclass_results(repo: Repo, classes: list[str], n_test: int) -> None:
    schema = repo.read_json("data/schema.json")
    assert schema["classes"] == classes
    scores = repo.read_json("metrics/evaluate.json")
    assert scores["n_test"] == n_test, scores
    for key in ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"):
        assert 0.0 <= scores[key] <= 1.0, (key, scores)
    assert 0.5 < scores["roc_auc"] <= 1.0, scores  # macro one-vs-rest over the classes
    per_class = repo.read_json("metrics/per_class.json")
    assert set(classes) <= per_class.keys(), per_class
    confusion = pd.read_csv(repo.path("plots/confusion.csv"))
    assert set(confusion["actual"]) == set(classes)
    assert len(confusion) == n_test


def test_example_table_runs_end_to_end_and_reruns_when_it_changes(workspace: Repo) -> None:
    workspace.set_params(
        {
            "generate.source": "file",
            "generate.path": EXAMPLE,
            "generate.target": "segment",
            "validate.drop_columns": ["customer_id"],
        }
    )
    first = workspace.dvc("repro")
    assert ran_stages(first.output) == list(STAGES), first.describe()
    assert "Traceback" not in first.output
    report = workspace.read_json("metrics/validation.json")
    assert report["passed"] is True and report["source"] == EXAMPLE, report
    assert report["dropped"]["columns"] == ["customer_id"], report
    schema = workspace.read_json("data/schema.json")
    names = {f["name"]: f["kind"] for f in schema["features"]}
    assert "customer_id" not in names and "segment" not in names
    assert names["region"] == "categorical" and names["income"] == "numeric", names
    rows = len(pd.read_csv(workspace.path(EXAMPLE)))
    assert_multiclass_results(workspace, ["bronze", "gold", "silver"], round(rows * 0.2))

    # Editing the input file (a DVC-tracked dependency) re-runs the pipeline from generate.
    table = pd.read_csv(workspace.path(EXAMPLE))
    table.iloc[:-100].to_csv(workspace.path(EXAMPLE), index=False)
    second = workspace.dvc("repro")
    assert ran_stages(second.output) == list(STAGES), second.describe()
    assert workspace.read_json("metrics/validation.json")["rows_in"] == rows - 100
    assert workspace.read_json("metrics/evaluate.json")["n_test"] == round((rows - 100) * 0.2)
    assert UP_TO_DATE in workspace.dvc("repro").output


def test_own_parquet_table_with_text_columns_and_three_string_classes(fresh_repo: Repo) -> None:
    path = "data/external/customers.parquet"
    good_table(n_rows=300).to_parquet(fresh_repo.path(path), index=False)
    fresh_repo.set_params(
        {"generate.source": "file", "generate.path": path, "generate.target": "label"}
    )
    result = fresh_repo.dvc("repro")
    assert ran_stages(result.output) == list(STAGES), result.describe()
    assert fresh_repo.read_json("metrics/validation.json")["source"] == path
    assert_multiclass_results(fresh_repo, sorted(CLASSES), 60)
    # The features separate the classes well: the pipeline must actually learn from them.
    assert fresh_repo.read_json("metrics/evaluate.json")["accuracy"] >= 0.7
    kinds = {f["name"]: f["kind"] for f in fresh_repo.read_json("data/schema.json")["features"]}
    assert kinds == {
        "spend": "numeric",
        "visits": "numeric",
        "age": "numeric",
        "region": "categorical",
    }
