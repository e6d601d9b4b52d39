"""Keys, CORS and model reload, against a real server process.

Reload: the project's workspace model is replaced by another trained model (files and
dvc.lock, as ``dvc repro`` would leave them); ``POST /admin/reload`` or SIGHUP swaps it in
while a client keeps predicting (no request fails); a tampered model is refused and the old
one serves on.
"""

from __future__ import annotations

import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_harness import Project, Server, build_project, records

ADMIN = {"X-API-Key": "admin-secret"}
KEYS = {"MLREPO_API_KEY": "client-secret", "MLREPO_ADMIN_KEY": "admin-secret"}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return build_project(tmp_path / "serving")


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Another model of the same features (more trees): what a new `dvc repro` would leave."""
    return build_project(tmp_path_factory.mktemp("other"), n_estimators=35)


def install(source: Project, target: Project) -> None:
    shutil.copytree(source.root / "models", target.root / "models", dirs_exist_ok=True)
    shutil.copy2(source.root / "dvc.lock", target.root / "dvc.lock")


@pytest.fixture
def server(project: Project) -> Iterator[Server]:
    env = {"MLREPO_PREDICTION_LOG": "off", **KEYS}
    with Server(project.root, env, "--model", "workspace") as server:
        server.client.headers["X-API-Key"] = "client-secret"
        yield server


def version(server: Server) -> str:
    return str(server.client.get("/model").json()["version"])


def test_the_api_key_guards_predictions_not_probes(server: Server, project: Project) -> None:
    record = records(project.features.iloc[:1])[0]
    with httpx.Client(base_url=server.url) as anonymous:
        for path, body in (("/predict", record), ("/predict/batch", [record])):
            refused = anonymous.post(path, json=body)
            assert refused.status_code == 401, refused.text
            assert "X-API-Key" in refused.json()["detail"][0]["msg"]
            wrong = anonymous.post(path, json=body, headers={"X-API-Key": "guess"})
            assert wrong.status_code == 401
        assert anonymous.get("/model").status_code == 401
        for path in ("/health", "/ready", "/metrics", "/docs", "/openapi.json"):
            assert anonymous.get(path).status_code == 200, path
        # CORS is off unless configured: no header that would let a page read the answers.
        preflight = anonymous.options(
            "/predict",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers
    assert server.client.post("/predict", json=record).status_code == 200
    spec = server.client.get("/openapi.json").json()
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]


def test_reload_needs_the_admin_key(server: Server) -> None:
    assert server.client.post("/admin/reload").status_code == 401  # the client key is not it
    response = server.client.post("/admin/reload", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["changed"] is False


def test_reload_is_off_without_an_admin_key(project: Project) -> None:
    server = Server(project.root, {"MLREPO_PREDICTION_LOG": "off"}, "--model", "workspace")
    try:
        response = server.client.post("/admin/reload", headers=ADMIN)
        assert response.status_code == 403
        assert "MLREPO_ADMIN_KEY" in response.json()["detail"][0]["msg"]
    finally:
        server.stop()


def test_reload_swaps_the_model_while_requests_keep_being_answered(
    server: Server, project: Project, other_model: Project
) -> None:
    old = version(server)
    record = records(project.features.iloc[:1])[0]
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": "client-secret"}) as client:
            while not stop.is_set():
                response = client.post("/predict", json=record)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.add(response.json()["model_version"])

    worker = threading.Thread(target=load)
    worker.start()
    try:
        server.wait_until(lambda: old in versions, what="answers from the old model")
        install(other_model, project)
        response = server.client.post("/admin/reload", headers=ADMIN)
        assert response.status_code == 200, response.text
        new = response.json()["model_version"]
        assert new != old and response.json() == {
            "model_version": new, "previous_version": old, "changed": True
        }  # fmt: skip
        server.wait_until(lambda: new in versions, what="answers from the new model")
    finally:
        stop.set()
        worker.join(30)
    assert set(statuses) == {200}, f"failed requests during the reload: {set(statuses)}"
    assert versions == {old, new}
    assert version(server) == new
    assert server.metric("mlrepo_model_reloads_total", 'outcome="ok"') == 1
    assert f'version="{old}"' not in server.client.get("/metrics").text


def test_a_tampered_model_is_refused_and_the_old_one_serves_on(
    server: Server, project: Project, other_model: Project
) -> None:
    old = version(server)
    install(other_model, project)
    model = project.root / "models" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"x")
    response = server.client.post("/admin/reload", headers=ADMIN)
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == f"reload failed; still serving {old}"
    assert "dvc checkout --force" in body["detail"][0]["msg"]
    assert version(server) == old
    assert server.client.post("/predict", json=records(project.features.iloc[:1])[0]).is_success
    assert server.metric("mlrepo_model_reloads_total", 'outcome="failed"') == 1


def test_sighup_reloads(server: Server, project: Project, other_model: Project) -> None:
    old = version(server)
    install(other_model, project)
    server.process.send_signal(signal.SIGHUP)
    server.wait_until(lambda: version(server) != old, what="the reload after SIGHUP")
    assert "model reloaded" in server.output


def test_cors_when_configured(project: Project) -> None:
    env: dict[str, Any] = {
        "MLREPO_PREDICTION_LOG": "off",
        "MLREPO_CORS_ORIGINS": '["https://app.example"]',
    }
    server = Server(project.root, env, "--model", "workspace")
    try:
        preflight = server.client.options(
            "/predict",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    finally:
        server.stop()
