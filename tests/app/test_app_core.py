"""The app's pure core, without a service: the form, the JSON rows, the tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mlrepo.app.analytics import error_counts
from mlrepo.app.client import json_rows, predictions_frame
from mlrepo.app.drift import drift_table
from mlrepo.app.experiments import compare, experiment_rows
from mlrepo.app.forms import MISSING, form_fields, record_from
from mlrepo.schema import Feature, FeatureSchema

SCHEMA = FeatureSchema(
    target="y",
    classes=[0, 1],
    features=[
        Feature(name="x", kind="numeric", min=-2.0, max=4.0),
        Feature(name="z", kind="numeric", nullable=True),
        Feature(name="c", kind="categorical", categories=["a", "b"], nullable=True),
    ],
)


def test_the_form_follows_the_schema_and_sends_missing_values_as_null() -> None:
    x, z, c = form_fields(SCHEMA)
    assert (x.low, x.high, x.default) == (-2.0, 4.0, 1.0)
    assert (z.low, z.high, z.default) == (None, None, 0.0)
    assert c.options == (MISSING, "a", "b")
    assert "2 categories" in c.help
    assert record_from([x, z, c], {"x": 3, "z": None, "c": MISSING}) == {
        "x": 3.0,
        "z": None,
        "c": None,
    }


def test_rows_sent_to_the_service_are_plain_json_values() -> None:
    frame = pd.DataFrame({"x": [1.5, np.nan], "c": ["a", None]})
    rows = json_rows(frame)
    assert rows == [[1.5, "a"], [None, None]]
    assert all(type(v) in (float, str, type(None)) for row in rows for v in row)


def test_predictions_have_the_columns_mlrepo_predict_writes() -> None:
    answer = [{"class": 1, "probabilities": {"0": 0.2, "1": 0.8}}]
    frame = predictions_frame(answer, start=5)
    assert list(frame.columns) == ["prediction", "proba_0", "proba_1"]
    assert frame.index.tolist() == [5]


def test_error_counts_are_read_from_the_exposition_text() -> None:
    text = (
        "# HELP mlrepo_http_requests_total HTTP requests\n"
        "# TYPE mlrepo_http_requests_total counter\n"
        'mlrepo_http_requests_total{endpoint="/predict",method="POST",status="200"} 7.0\n'
        'mlrepo_http_requests_total{endpoint="/predict",method="POST",status="422"} 2.0\n'
        'mlrepo_http_requests_total{endpoint="other",method="GET",status="404"} 1.0\n'
    )
    frame = error_counts(text)
    assert frame.to_dict("records") == [
        {"endpoint": "other", "method": "GET", "status": "404", "requests": 1},
        {"endpoint": "/predict", "method": "POST", "status": "422", "requests": 2},
    ]


def test_experiments_are_flattened_and_compared() -> None:
    def rev(name: str, accuracy: float, seed: int) -> dict[str, object]:
        return {
            "rev": name,
            "name": None,
            "data": {
                "timestamp": None,
                "metrics": {"m.json": {"data": {"accuracy": accuracy, "cv": {"std": 0.1}}}},
                "params": {"params.yaml": {"data": {"train": {"seed": seed, "list": [1]}}}},
            },
        }

    shown = [rev("workspace", 0.9, 2), {**rev("abcdef1234", 0.8, 1), "name": "main"}]
    shown[1]["experiments"] = [{"revs": [{**rev("1234567890", 0.95, 3), "name": "exp-1"}]}]
    rows = experiment_rows(shown)
    assert rows["rev"].tolist() == ["workspace", "abcdef1", "1234567"]
    assert rows["parent"].tolist() == ["", "", "abcdef1"]
    assert rows["m.json:cv.std"].tolist() == [0.1, 0.1, 0.1]
    assert rows["params.yaml:train.list"].tolist() == ["[1]"] * 3
    table = compare(rows, "abcdef1 (main)", "1234567 (exp-1)").set_index("")
    assert math.isclose(table.loc["m.json:accuracy", "b - a"], 0.15)
    assert "params.yaml:train.list" not in table.index  # the same in both
    assert table.loc["params.yaml:train.seed", "abcdef1 (main)"] == "1"


def test_drift_scores_are_shown_in_significant_digits() -> None:
    table = drift_table([{"column": "x", "drift": 1, "score": 1.234567e-30, "threshold": 0.05}])
    assert table.to_dict("records") == [
        {"column": "x", "drift": "yes", "score": "1.235e-30", "threshold": "0.05"}
    ]
