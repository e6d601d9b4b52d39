"""The app's analytics read a PostgreSQL prediction log through the same URL as the service."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from app_harness import APP
from serve_harness import Postgres, Server, build_project, records, throwaway_postgres
from streamlit.testing.v1 import AppTest

from mlrepo.app.analytics import read_traffic


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    yield from throwaway_postgres()


def test_analytics_read_the_services_postgresql_log(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = build_project(tmp_path / "project", n_samples=300, n_estimators=5)
    server = Server(project.root, {"DATABASE_URL": postgres.url}, "--model", "workspace")
    try:
        batch = {"columns": list(project.features.columns), "data": []}
        batch["data"] = project.features.head(7).to_numpy().tolist()
        assert server.client.post("/predict/batch", json=batch).is_success
        for record in records(project.features.head(2)):
            assert server.client.post("/predict", json=record).is_success
        server.wait_until(
            lambda: server.metric("mlrepo_prediction_log_written_rows_total") == 9,
            what="9 rows written",
        )
        traffic = read_traffic(postgres.url, timedelta(hours=1))
        assert len(traffic.rows) == 9
        assert traffic.requests()["records"].tolist() == [7, 1, 1]
        assert traffic.class_distribution()["predictions"].sum() == 9

        monkeypatch.setenv("MLREPO_SERVICE_URL", server.url)
        monkeypatch.setenv("DATABASE_URL", postgres.url)
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        at.switch_page("views/analytics.py").run()
        shown = {m.label: m.value for m in at.metric}
        assert (shown["Requests"], shown["Predicted records"]) == ("3", "9")
        assert not at.error
    finally:
        server.stop()
