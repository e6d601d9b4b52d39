"""The defects of issue 13, each reproduced against a real ``mlrepo serve`` process.

A log that must survive its SQLite file's directory being replaced, metric labels a client
cannot multiply, errors that do not echo a huge value, problems collected only up to a bound,
memory given back after large bodies, nothing of the host in ``/ready``, an empty ``--model``
refused, a tamper hint that works, and an OpenAPI document that says what the service does.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from dvc_harness import Repo
from serve_harness import Project, Server, build_project, fast_log, records


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return build_project(tmp_path_factory.mktemp("defects"))


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[Server]:
    env = fast_log(f"sqlite:///{project.root / 'logs' / 'predictions.db'}")
    with Server(project.root, env, "--model", "workspace") as server:
        yield server


@pytest.fixture(scope="module")
def record(project: Project) -> dict[str, Any]:
    return records(project.features.iloc[:1])[0]


def post(server: Server, path: str, body: Any) -> httpx.Response:
    return server.client.post(
        path, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


def sqlite_request_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    connection = sqlite3.connect(path)
    try:
        return {r[0] for r in connection.execute("SELECT request_id FROM prediction_log")}
    except sqlite3.OperationalError:  # the table is not made yet
        return set()
    finally:
        connection.close()


def test_the_log_reopens_a_sqlite_file_whose_directory_was_replaced_under_load(
    tmp_path: Path, project: Project
) -> None:
    folder = tmp_path / "logdir"
    path = folder / "predictions.db"
    server = Server(project.root, fast_log(f"sqlite:///{path}"), "--model", "workspace")
    body = records(project.features.iloc[:1])[0]
    answered: list[tuple[float, str]] = []  # (time the request was sent, request id)
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                sent = time.monotonic()
                response = client.post("/predict", json=body)
                assert response.status_code == 200, response.text
                answered.append((sent, response.json()["request_id"]))

    worker = threading.Thread(target=load)
    try:
        server.wait_until_log_up()
        worker.start()
        server.wait_until(lambda: len(sqlite_request_ids(path)) >= 20, what="rows in the file")
        shutil.rmtree(folder)  # as an operator would: rm -rf DIR && mkdir DIR
        folder.mkdir()
        replaced = time.monotonic()
        server.wait_until(lambda: len([a for a in answered if a[0] > replaced]) >= 50, what="load")
        stop.set()
        worker.join(30)
        after = {rid for sent, rid in answered if sent > replaced}
        server.wait_until(
            lambda: after <= sqlite_request_ids(path),
            what="the rows answered since in the new file",
        )
        # /ready's counts come from the writer process's reports, every 0.1 s.
        server.wait_until(
            lambda: server.ready()["database"]["written_rows"] == len(answered),
            timeout=5,
            what="every answered row counted as written",
        )
        ready = server.ready()
        assert ready["database"]["status"] == "up", ready
        assert ready["database"]["dropped_rows"] == 0
    finally:
        stop.set()
        server.stop()
    assert "was removed or replaced; reopening it" in server.output
    assert after <= sqlite_request_ids(path)


def test_the_service_stays_ready_while_the_log_database_is_unusable(
    tmp_path: Path, project: Project, record: dict[str, Any]
) -> None:
    # A directory where the database file should be: no log, but predictions go on.
    path = tmp_path / "predictions.db"
    path.mkdir()
    server = Server(project.root, fast_log(f"sqlite:///{path}"), "--model", "workspace")
    try:
        server.wait_until(lambda: server.ready()["database"]["status"] == "down", what="down")
        ready = server.ready()
        assert ready["http_status"] == 200 and ready["ready"] is True, ready
        assert post(server, "/predict", record).status_code == 200
        assert server.metric("mlrepo_prediction_log_database_up") == 0
    finally:
        server.stop()


def test_ready_shows_no_path_url_or_driver_message(server: Server, project: Project) -> None:
    server.wait_until_log_up()
    text = server.client.get("/ready").text
    assert str(project.root) not in text and "predictions.db" not in text
    database = server.ready()["database"]
    assert "url" not in database and database["backend"] == "sqlite"


def test_client_chosen_methods_and_paths_do_not_add_metric_series(server: Server) -> None:
    rng = random.Random(0)
    # httptools (uvicorn's C parser) refuses a made-up method with a 400 before the app sees
    # it; WebDAV's methods pass the parser and reach the app, so both kinds are sent.
    webdav = ["PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH"]
    for _ in range(200):
        made_up = "".join(rng.choices(string.ascii_uppercase, k=12))
        method = rng.choice([made_up, rng.choice(webdav)])
        path = "/" + "".join(rng.choices(string.ascii_lowercase, k=8))
        response = server.client.request(method, rng.choice(["/predict", path]))
        assert response.status_code < 500, (method, response.status_code)
    text = server.client.get("/metrics").text
    methods = set(re.findall(r'^mlrepo_http_requests_total\{[^}]*method="([^"]*)"', text, re.M))
    endpoints = set(re.findall(r'^mlrepo_http_\w+\{endpoint="([^"]*)"', text, re.M))
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods
    assert endpoints <= {"/health", "/ready", "/predict", "/predict/batch", "/model", "/metrics",
                         "/docs", "other"}  # fmt: skip
    assert len(text) < 100_000


HUGE = "z" * 5_000_000


@pytest.mark.parametrize(
    ("path", "make"),
    [
        ("/predict", lambda r: {**r, "cat_1": HUGE}),  # an unknown category
        ("/predict", lambda r: {**r, "num_00": HUGE}),  # a string for a number
        ("/predict", lambda r: {**r, HUGE: 1}),  # an unknown field
        ("/predict/batch", lambda r: [r, {**r, "cat_0": HUGE}]),
        ("/predict/batch", lambda r: {"columns": [*r, HUGE], "data": [[*r.values(), 1]]}),
    ],
    ids=["category", "wrong_type", "field_name", "batch_category", "column_name"],
)
def test_an_error_does_not_echo_a_huge_value(
    server: Server, record: dict[str, Any], path: str, make: Any
) -> None:
    response = post(server, path, make(record))
    assert response.status_code == 422, response.text[:500]
    assert len(response.content) < 5_000, response.text[:500]
    assert HUGE[:1000] not in response.text


def test_a_batch_of_wrong_values_lists_a_bounded_number_of_problems(
    tmp_path: Path, project: Project
) -> None:
    env = {"MLREPO_PREDICTION_LOG": "off", "MLREPO_MAX_PROBLEMS": "20"}
    server = Server(project.root, env, "--model", "workspace")
    try:
        frame = project.features.sample(10_000, replace=True, random_state=0)
        wrong = [{k: [v] for k, v in r.items()} for r in records(frame)]  # every value a list
        response = post(server, "/predict/batch", wrong)
        assert response.status_code == 422
        body = response.json()
        assert len(body["detail"]) == 20
        assert body["error"] == "100000 value(s) of the wrong type; the first 20 are listed"
        misshapen = [{**r, "extra": 1} for r in records(frame)]
        body = post(server, "/predict/batch", misshapen).json()
        assert len(body["detail"]) == 20 and "the first 20 are listed" in body["error"]
        assert {d["row"] for d in body["detail"]} <= set(range(1, 21))
    finally:
        server.stop()


def rss_mib(server: Server) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def test_memory_goes_back_after_large_bodies(tmp_path: Path, project: Project) -> None:
    env = {"MLREPO_PREDICTION_LOG": "off"}
    server = Server(project.root, env, "--model", "workspace")
    try:
        batch = records(project.features.sample(10_000, replace=True, random_state=0))
        assert post(server, "/predict/batch", batch).status_code == 200  # warm up
        before = rss_mib(server)
        # 15 MiB of records, each a valid one: parsed (hundreds of thousands of objects), then
        # refused as too many records. Each such request used to keep ~45 MB until a full
        # garbage collection, and then the allocator kept much of it.
        one = json.dumps(batch[0]).encode()
        flood = b"[" + b",".join([one] * (15 * 2**20 // (len(one) + 1))) + b"]"
        for _ in range(4):
            response = server.client.post(
                "/predict/batch", content=flood, headers={"content-type": "application/json"}
            )
            assert response.status_code == 413, response.text
            assert post(server, "/predict/batch", batch).status_code == 200
        grown = rss_mib(server) - before
        over_limit = b"[" + b"0," * (2**25) + b"0]"  # 64 MiB: refused before it is parsed
        response = server.client.post(
            "/predict/batch", content=over_limit, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
    finally:
        server.stop()
    assert grown < 40, f"RSS grew by {grown:.0f} MiB"


def test_an_empty_model_reference_is_refused(project: Project) -> None:
    with pytest.raises(RuntimeError, match="--model: empty reference") as failure:
        Server(project.root, {}, "--model", "")
    assert "Traceback" not in str(failure.value)


def test_openapi_rejects_an_empty_batch_and_declares_the_metrics_type(
    server: Server, record: dict[str, Any]
) -> None:
    spec = server.client.get("/openapi.json").json()
    content = spec["paths"]["/predict/batch"]["post"]["requestBody"]["content"]
    schema = content["application/json"]["schema"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"columns": list(record), "data": []}, schema)
    jsonschema.validate([record], schema)
    assert post(server, "/predict/batch", []).status_code == 422
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    assert server.client.get("/metrics").headers["content-type"].startswith("text/plain")


TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: "
)


def test_the_output_has_one_log_format(server: Server) -> None:
    server.client.get("/health")
    lines = [line for line in server.output.splitlines() if line.strip()]
    assert any("uvicorn" in line for line in lines) and any("mlrepo" in line for line in lines)
    assert [line for line in lines if not TEXT_LINE.match(line)] == []


def test_json_log_format_is_one_object_a_line(project: Project) -> None:
    env = {"MLREPO_PREDICTION_LOG": "off", "MLREPO_LOG_FORMAT": "json"}
    server = Server(project.root, env, "--model", "workspace", "--access-log")
    try:
        server.client.get("/health")
    finally:
        server.stop()
    entries = [json.loads(line) for line in server.output.splitlines() if line.strip()]
    loggers = {e["logger"] for e in entries}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers
    assert any(name.startswith("mlrepo") for name in loggers), loggers
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)


def test_a_bad_setting_is_one_error_naming_the_variable(project: Project) -> None:
    with pytest.raises(RuntimeError, match=r"MLREPO_MAX_BODY_BYTES='lots': ") as failure:
        Server(project.root, {"MLREPO_MAX_BODY_BYTES": "lots"}, "--model", "workspace")
    assert "Traceback" not in str(failure.value)


@pytest.mark.dvc
def test_the_tamper_hint_is_a_command_that_restores_the_model(workspace: Repo) -> None:
    model = workspace.path("models/model.onnx")
    model.write_bytes(model.read_bytes() + b"tampered")
    with pytest.raises(RuntimeError, match="was changed after the pipeline wrote it") as failure:
        Server(workspace.root, {"MLREPO_PREDICTION_LOG": "off"}, "--model", "workspace")
    hint = re.search(r"Fix: `(dvc [^`]+)`", str(failure.value))
    assert hint is not None, str(failure.value)
    assert hint.group(1) == "dvc checkout --force models/model.onnx"
    workspace.dvc(*hint.group(1).split()[1:])  # exactly what the message says to run
    server = Server(workspace.root, {"MLREPO_PREDICTION_LOG": "off"}, "--model", "workspace")
    server.stop()


def test_hostile_shapes_are_4xx_not_5xx(server: Server, record: dict[str, Any]) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    wide = json.dumps({**record, **{f"x{i}": i for i in range(50_000)}}).encode()
    huge = json.dumps(record).replace(str(record["num_00"]), "1e400", 1).encode()
    cases = [
        ("/predict", deep, 400),
        ("/predict/batch", deep, 400),
        ("/predict", wide, 422),
        ("/predict/batch", b"[" + wide + b"]", 422),
        ("/predict/batch", b"[" + huge + b"]", 422),
    ]
    for path, body, status in cases:
        response = server.client.post(
            path, content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == status, (path, status, response.text[:300])
        assert len(response.content) < 50_000
        assert "Traceback" not in response.text and "site-packages" not in response.text
    too_big = post(server, "/predict", {**record, "num_00": 10**400})
    assert too_big.status_code == 422, too_big.text
    assert too_big.json()["detail"][0]["field"] == "num_00"
