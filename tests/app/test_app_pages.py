"""Every page of the web app, run by Streamlit's AppTest against a real service on 127.0.0.1."""

from __future__ import annotations

import pandas as pd
import pytest
from app_harness import APP, Served, csv_bytes
from serve_harness import Server, free_port, records
from streamlit.testing.v1 import AppTest

from mlrepo.prediction.core import check_input
from mlrepo.schema import FeatureSchema

TIMEOUT = 60


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def schema(served: Served) -> FeatureSchema:
    return FeatureSchema.model_validate(served.server.client.get("/model").json()["feature_schema"])


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_shows_the_served_model(app_env: Served) -> None:
    app_env.server.wait_until_log_up()  # the readiness line below shows the log's state
    at = app()
    shown = metrics(at)
    model = app_env.server.client.get("/model").json()
    assert shown["Model version"] == model["version"]
    assert shown["Test accuracy"] == f"{app_env.accuracy:.3f}"
    assert shown["Promotable"] == "yes"
    assert shown["Stage"] == "none"
    readiness = [m.value for m in at.markdown if m.value.startswith("ready:")]
    assert readiness == ["ready: **yes** · prediction log: **up** (sqlite)"], readiness
    assert not at.error


def test_a_service_that_does_not_answer_is_one_clear_error(
    app_env: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLREPO_SERVICE_URL", url)
    at = app()
    assert len(at.error) == 1
    assert f"the prediction service at {url} cannot be reached" in at.error[0].value
    assert "make serve" in at.error[0].value
    assert not at.metric


def test_a_service_that_wants_a_key_gets_the_apps_key(
    app_env: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"DATABASE_URL": app_env.database_url, "MLREPO_API_KEY": "s3cret-key"}
    keyed = Server(app_env.root, env, "--model", "workspace")
    try:
        monkeypatch.setenv("MLREPO_SERVICE_URL", keyed.url)
        monkeypatch.delenv("MLREPO_API_KEY", raising=False)
        at = app()
        assert "the service answered 401" in at.error[0].value
        assert "set MLREPO_API_KEY" in at.error[0].value
        monkeypatch.setenv("MLREPO_API_KEY", "s3cret-key")
        at = app()
        assert not at.error
        assert metrics(at)["Model version"] == app_env.server.client.get("/model").json()["version"]
    finally:
        keyed.stop()


def test_the_form_is_generated_from_the_feature_schema(app_env: Served) -> None:
    at = app("prediction")
    features = schema(app_env).features
    numbers = {n.label: n for n in at.number_input}
    boxes = {s.label: s for s in at.selectbox}
    assert set(numbers) | set(boxes) == {f.name for f in features}
    for feature in features:
        if feature.kind == "numeric":
            field = numbers[feature.name]
            assert (field.min, field.max) == (feature.min, feature.max)
        else:
            assert boxes[feature.name].options == feature.categories


def test_the_form_predicts_through_the_service(app_env: Served) -> None:
    at = app("prediction")
    record = records(app_env.project.features.head(1))[0]
    for field in at.number_input:
        field.set_value(record[field.label])
    for box in at.selectbox:
        box.set_value(record[box.label])
    at.button[0].click().run()
    assert not at.error
    expected = app_env.server.client.post("/predict", json=record).json()
    shown = metrics(at)
    assert shown["Predicted class"] == str(expected["class"])
    assert shown["Probability"] == f"{max(expected['probabilities'].values()):.1%}"


def test_a_batch_is_scored_by_the_service_and_downloadable(app_env: Served) -> None:
    at = app("batch")
    frame = app_env.project.test.head(60).reset_index(drop=True)
    at.file_uploader[0].set_value(("batch.csv", csv_bytes(frame), "text/csv")).run()
    at.multiselect[0].set_value(["target"]).run()
    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value.startswith("60 rows scored")
    shown = at.dataframe[0].value
    body = {"columns": list(app_env.project.features.columns), "data": []}
    body["data"] = app_env.project.features.head(60).to_numpy().tolist()
    expected = app_env.server.client.post("/predict/batch", json=body).json()["predictions"]
    assert list(shown.columns) == ["target", "prediction", "proba_0", "proba_1"]
    assert shown["prediction"].tolist() == [p["class"] for p in expected]
    assert shown["proba_1"].tolist() == pytest.approx([p["probabilities"]["1"] for p in expected])
    assert shown["target"].tolist() == frame["target"].tolist()
    assert at.get("download_button")


def test_a_batch_that_breaks_the_schema_lists_each_problem_as_mlrepo_predict(
    app_env: Served,
) -> None:
    at = app("batch")
    frame = app_env.project.features.head(20).reset_index(drop=True)
    frame = frame.drop(columns="num_01")
    frame["num_00"] = frame["num_00"].astype(object)
    frame.loc[[2, 5], "num_00"] = "n/a"
    frame.loc[3, "cat_0"] = "never-seen"
    frame["extra"] = 1
    at.file_uploader[0].set_value(("bad.csv", csv_bytes(frame), "text/csv")).run()
    assert "does not fit the model's feature schema: 4 problem(s)" in at.error[0].value
    table = at.dataframe[0].value
    reread = pd.read_csv(pd.io.common.BytesIO(csv_bytes(frame)))
    cli = check_input(reread, schema(app_env).features)
    assert table["rule"].tolist() == [p.check for p in cli]
    assert table["problem"].tolist() == [p.message for p in cli]
    rows = dict(zip(table["column"], table["problem"], strict=True))
    assert "rows 3, 6" in rows["num_00"]
    assert "rows 4" in rows["cat_0"]
    assert set(rows) == {"num_00", "num_01", "cat_0", "extra"}
    assert not at.success


def test_analytics_reads_the_prediction_log_and_the_error_counters(app_env: Served) -> None:
    client = app_env.server.client
    features = records(app_env.project.features.head(5))
    for record in features:
        client.post("/predict", json=record)
    assert client.post("/predict", json={"nope": 1}).status_code == 422
    app_env.server.wait_until(
        lambda: app_env.server.metric("mlrepo_prediction_log_queue_rows") == 0, what="log flush"
    )
    at = app("analytics")
    at.selectbox[0].set_value("everything").run()
    shown = metrics(at)
    written = app_env.server.metric("mlrepo_prediction_log_written_rows_total")
    assert int(shown["Predicted records"]) == written
    assert int(shown["Requests"]) >= 5
    for name in ("Latency p50", "Latency p95", "Latency p99"):
        assert shown[name].endswith(" ms")
    errors = at.dataframe[-1].value
    assert {"endpoint": "/predict", "status": "422"}.items() <= errors.iloc[0].to_dict().items()
    assert not at.error


def test_drift_shows_the_latest_report_and_checks_an_upload(app_env: Served) -> None:
    at = app("drift")
    shown = metrics(at)
    assert shown["Dataset drift"] == "yes"  # the fixture's report compares a shifted batch
    shifted = pd.read_parquet(app_env.root / "data" / "shifted.parquet")
    at.file_uploader[0].set_value(("shifted.csv", csv_bytes(shifted), "text/csv")).run()
    assert at.error and at.error[0].value.startswith("Drift:")
    tests = at.dataframe[-1].value
    assert set(tests.loc[tests["kind"] == "numeric", "drift"]) == {"yes"}  # all were shifted
    same = app_env.project.features
    at.file_uploader[0].set_value(("same.csv", csv_bytes(same), "text/csv")).run()
    assert at.success and at.success[0].value.startswith("No drift:")


def test_experiments_lists_revisions_and_compares_two(app_env: Served) -> None:
    at = app("experiments")
    table = at.dataframe[0].value
    assert table["rev"].tolist()[0] == "workspace"
    assert len(table) == 2
    accuracy = "metrics/evaluate.json:accuracy"
    assert table[accuracy].iloc[0] == pytest.approx(app_env.accuracy)
    compared = at.dataframe[1].value.set_index("")
    assert compared.loc[accuracy, "b - a"] == pytest.approx(0.05)
    assert compared.loc["params.yaml:train.seed"].tolist()[:2] == ["2", "1"]
