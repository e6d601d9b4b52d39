"""The HTTP service, as a real uvicorn process on 127.0.0.1 with its SQLite prediction log.

One server serves a small trained model for the whole module (the batch limit lowered to 50
records); each test talks HTTP to it. Predictions must equal the model's in-process ones, and
every kind of client mistake must be a 4xx that names the field, never a 500.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from serve_harness import Project, Server, build_project, records

from mlrepo.prediction.core import LoadedModel, load_model

MAX_BATCH = 50


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return build_project(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[Server]:
    env = {
        "DATABASE_URL": f"sqlite:///{project.root / 'predictions.db'}",
        "MLREPO_MAX_BATCH_ROWS": str(MAX_BATCH),
    }
    with Server(project.root, env, "--model", "workspace") as server:
        yield server


@pytest.fixture(scope="module")
def model(project: Project) -> LoadedModel:
    """The model of the project, loaded in this process the way the server loads it."""
    return load_model("workspace", root=project.root)


@pytest.fixture(scope="module")
def record(project: Project) -> dict[str, Any]:
    return records(project.features.iloc[:1])[0]


def test_health_and_ready(server: Server) -> None:
    assert server.client.get("/health").json() == {"status": "ok"}
    server.wait_until_log_up()
    ready = server.ready()
    assert ready["ready"] is True
    assert ready["model"]["loaded"] is True
    assert ready["database"]["status"] == "up"


def test_single_and_batch_predictions_equal_the_model_in_process(
    server: Server, project: Project, model: LoadedModel
) -> None:
    frame = project.features.iloc[:40]
    expected = model.predictor.predict_proba(frame)
    classes = model.predictor.classes
    keys = [str(c) for c in classes]

    def check(prediction: dict[str, Any], row: int) -> None:
        got = [prediction["probabilities"][k] for k in keys]
        np.testing.assert_array_equal(got, expected[row])
        assert prediction["class"] == classes[int(np.argmax(expected[row]))]

    for row, body in enumerate(records(frame.iloc[:5])):
        response = server.client.post("/predict", json=body)
        assert response.status_code == 200, response.text
        single = response.json()
        assert single["model_version"] == model.version
        assert single["request_id"] == response.headers["x-request-id"]
        check(single, row)

    as_records = server.client.post("/predict/batch", json=records(frame))
    columnar = {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}
    as_columns = server.client.post("/predict/batch", json=columnar)
    for response in (as_records, as_columns):
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == len(frame)
        for row, prediction in enumerate(predictions):
            check(prediction, row)
    # Columns in any order: they are matched by name.
    shuffled = frame[list(reversed(frame.columns))]
    body = {"columns": list(shuffled.columns), "data": shuffled.to_numpy().tolist()}
    reordered = server.client.post("/predict/batch", json=body).json()["predictions"]
    assert reordered == as_columns.json()["predictions"]


def test_model_card(server: Server, model: LoadedModel) -> None:
    card = server.client.get("/model").json()
    meta = model.bundle.metadata
    assert card["version"] == model.version
    assert card["backend"] == model.predictor.backend
    assert card["params"] == meta["params"]
    assert card["feature_schema"] == meta["feature_schema"]
    assert card["training_data_md5"] == meta["training_data"]["md5"]
    assert card["classes"] == model.predictor.classes
    assert {"name", "git_rev", "metrics"} <= set(card)


def json_post(server: Server, path: str, body: Any) -> httpx.Response:
    # json.dumps writes NaN and Infinity as most JSON libraries do (httpx refuses them).
    return raw_post(server, path, json.dumps(body).encode(), "application/json")


def raw_post(server: Server, path: str, content: bytes, content_type: str) -> httpx.Response:
    return server.client.post(path, content=content, headers={"content-type": content_type})


def without(record: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != name}


# (case id, request builder, expected status, the field the details must name, its type)
BAD_REQUESTS: list[tuple[str, Any, int, str | None, str]] = [
    ("missing", lambda r: without(r, "num_01"), 422, "num_01", "missing"),
    ("extra", lambda r: {**r, "customer": 7}, 422, "customer", "extra_forbidden"),
    (
        "misspelled",
        lambda r: {**without(r, "num_03"), "num_3": r["num_03"]},
        422,
        "num_3",
        "extra_forbidden",
    ),
    ("text_for_number", lambda r: {**r, "num_02": "1.5"}, 422, "num_02", "float_type"),
    ("bool_for_number", lambda r: {**r, "num_02": True}, 422, "num_02", "float_type"),
    ("number_for_category", lambda r: {**r, "cat_0": 3}, 422, "cat_0", "string_type"),
    ("null", lambda r: {**r, "num_04": None}, 422, "num_04", "float_type"),
    ("nan", lambda r: {**r, "num_05": math.nan}, 422, "num_05", "finite_number"),
    ("inf", lambda r: {**r, "num_05": -math.inf}, 422, "num_05", "finite_number"),
    ("unknown_category", lambda r: {**r, "cat_1": "zebra"}, 422, "cat_1", "isin"),
    ("not_an_object", lambda r: [r], 422, None, "model_type"),
]


@pytest.mark.parametrize(
    ("make", "status", "field", "kind"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_single_record_is_a_4xx_naming_the_field(
    server: Server, record: dict[str, Any], make: Any, status: int, field: str | None, kind: str
) -> None:
    response = json_post(server, "/predict", make(record))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    assert any(d["field"] == field and d["type"] == kind for d in body["detail"]), body


def test_misspelled_field_suggests_the_right_name(server: Server, record: dict[str, Any]) -> None:
    body = {**without(record, "num_03"), "num_3": record["num_03"]}
    details = json_post(server, "/predict", body).json()["detail"]
    assert {d["field"] for d in details} == {"num_3", "num_03"}
    assert "did you mean 'num_03'?" in next(d["msg"] for d in details if d["field"] == "num_3")


def test_malformed_json_wrong_content_type_and_empty_body(server: Server) -> None:
    for path in ("/predict", "/predict/batch"):
        malformed = raw_post(server, path, b'{"num_00": 1,', "application/json")
        assert malformed.status_code == 400, malformed.text
        assert malformed.json()["detail"][0]["type"] == "json_invalid"
        wrong_type = raw_post(server, path, b"num_00=1", "application/x-www-form-urlencoded")
        assert wrong_type.status_code == 415, wrong_type.text
        assert "application/json" in wrong_type.json()["detail"][0]["msg"]
        empty = raw_post(server, path, b"", "application/json")
        assert empty.status_code == 400, empty.text


def test_bad_batches_name_the_record_and_field(server: Server, project: Project) -> None:
    rows = records(project.features.iloc[:5])
    rows[3] = {**rows[3], "num_01": "x"}
    rows[4] = without(rows[4], "cat_0")
    details = json_post(server, "/predict/batch", rows).json()["detail"]
    assert {(d["row"], d["field"], d["type"]) for d in details} == {
        (4, "num_01", "float_type"),
        (5, "cat_0", "missing"),
    }

    rows = records(project.features.iloc[:5])
    rows[2] = {**rows[2], "cat_1": "zebra"}
    response = json_post(server, "/predict/batch", rows)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["field"] == "cat_1" and problem["type"] == "isin"
    assert "rows 3" in problem["msg"] and "zebra" in problem["msg"]

    frame = project.features.iloc[:3]
    columns = list(frame.columns)
    data = frame.to_numpy().tolist()
    cases = [
        ({"columns": [*columns[:-1], "cat_l"], "data": data}, {("cat_l", "extra_forbidden")}),
        ({"columns": columns, "data": [*data[:2], data[2][:-1]]}, {(None, "row_length")}),
        ({"columns": columns, "data": [[*data[0][:-1], 5], *data[1:]]}, {("cat_1", "string_type")}),
        ({"columns": columns}, {("data", "missing")}),
        ({"rows": data}, {(None, "body_type")}),
        ([], {(None, "empty")}),
    ]
    for body, expected in cases:
        response = json_post(server, "/predict/batch", body)
        assert response.status_code == 422, (body, response.text)
        found = {(d["field"], d["type"]) for d in response.json()["detail"]}
        assert expected <= found, (body, found)


def test_batch_beyond_the_limit_is_413(server: Server, project: Project) -> None:
    frame = project.features.sample(MAX_BATCH + 1, replace=True, random_state=0)
    response = json_post(server, "/predict/batch", records(frame))
    assert response.status_code == 413, response.text
    columnar = {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}
    assert json_post(server, "/predict/batch", columnar).status_code == 413
    at_limit = json_post(server, "/predict/batch", records(frame.iloc[:MAX_BATCH]))
    assert at_limit.status_code == 200


def test_metrics_count_requests_predictions_and_the_log(server: Server, project: Project) -> None:
    before = server.metric("mlrepo_predictions_total", 'class="0"') + server.metric(
        "mlrepo_predictions_total", 'class="1"'
    )
    ok = server.metric(
        "mlrepo_http_requests_total", 'endpoint="/predict/batch",method="POST",status="200"'
    )
    assert json_post(server, "/predict/batch", records(project.features.iloc[:7])).is_success
    after = server.metric("mlrepo_predictions_total", 'class="0"') + server.metric(
        "mlrepo_predictions_total", 'class="1"'
    )
    assert after - before == 7
    assert (
        server.metric(
            "mlrepo_http_requests_total", 'endpoint="/predict/batch",method="POST",status="200"'
        )
        == ok + 1
    )
    text = server.client.get("/metrics").text
    assert 'mlrepo_http_request_duration_seconds_bucket{endpoint="/predict",' in text
    assert "mlrepo_model_info{" in text and "mlrepo_prediction_log_queue_rows" in text
    assert server.metric("mlrepo_prediction_log_database_up") == 1
    # Unknown paths share one label, so scanning for URLs cannot grow the metrics.
    server.client.get("/no/such/path")
    assert 'endpoint="other",method="GET",status="404"' in server.client.get("/metrics").text


def test_no_client_mistake_was_a_server_error(server: Server) -> None:
    # Runs after the bad-request tests above (pytest keeps file order).
    assert 'status="500"' not in server.client.get("/metrics").text


def test_docs_page_loads_nothing_from_another_host(server: Server) -> None:
    page = server.client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    # Every script, style sheet and icon: a path on this server (no scheme, no host).
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3, assets
    assert not re.search(r"(?:src|href|url)\s*[=:]\s*[\"']?(?:https?:)?//", page.text), page.text
    for asset in assets:
        assert asset.startswith("/docs/assets/"), asset
        response = server.client.get(asset)
        assert response.status_code == 200 and len(response.content) > 1000, asset
    script = server.client.get("/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in script.headers["content-type"]
    assert "SwaggerUIBundle" in script.text
    assert "'/openapi.json'" in page.text


def test_openapi_docs_show_the_feature_schema(server: Server, model: LoadedModel) -> None:
    spec = server.client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    record = body["schema"]
    assert set(record["required"]) == set(model.predictor.schema.names)
    assert record["additionalProperties"] is False
    categories = model.predictor.schema.features[-1].categories
    assert record["properties"]["cat_1"]["enum"] == categories
    assert "/predict/batch" in spec["paths"] and "/model" in spec["paths"]


def test_serve_reports_a_bad_model_reference_before_starting(project: Project) -> None:
    with pytest.raises(RuntimeError, match="unknown model reference 'nope'"):
        Server(project.root, {}, "--model", "nope")


def test_the_log_received_every_prediction_of_this_module(server: Server) -> None:
    # Rows arrive within a flush interval; the exact count across restarts and outages is
    # tested in test_prediction_log.py.
    server.wait_until(
        lambda: server.ready()["database"]["queued_rows"] == 0, what="the log to drain"
    )
    assert server.ready()["database"]["written_rows"] > 0


def test_several_workers_serve_the_same_model_and_log_every_prediction(
    project: Project, model: LoadedModel
) -> None:
    database = project.root / "workers.db"
    env = {"DATABASE_URL": f"sqlite:///{database}", "MLREPO_ONNX_INTER_OP_THREADS": "2"}
    server = Server(project.root, env, "--model", "workspace", "--workers", "2")
    frame = project.features.iloc[:20]
    expected = model.predictor.predict_proba(frame)
    keys = [str(c) for c in model.predictor.classes]
    try:
        for row, body in enumerate(records(frame)):
            # A connection each, so that both workers answer some.
            with httpx.Client(base_url=server.url, timeout=30) as client:
                response = client.post("/predict", json=body)
            assert response.status_code == 200, response.text
            got = [response.json()["probabilities"][k] for k in keys]
            np.testing.assert_array_equal(got, expected[row])
    finally:
        server.stop()
    with sqlite3.connect(database) as connection:
        logged = connection.execute("SELECT count(DISTINCT request_id) FROM prediction_log")
        assert logged.fetchone()[0] == len(frame)
    # One spill file slot per worker process.
    assert len(list(project.root.glob("workers.db.spill.w*.lock"))) == 2
