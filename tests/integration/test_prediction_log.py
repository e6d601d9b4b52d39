"""The prediction log in real databases: N predictions give N rows, across an outage and a
graceful shutdown, on a SQLite file and on a PostgreSQL server.

PostgreSQL: a throwaway server started here with initdb/pg_ctl (as the ``postgres`` user when
running as root), or the server of ``DATABASE_URL`` if it is a PostgreSQL URL (then the outage
test, which stops and restarts the server, is skipped). Without either, the PostgreSQL tests are
skipped with the reason.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import psutil
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from serve_harness import (
    Postgres,
    Project,
    Server,
    build_project,
    fast_log,
    log_writer_processes,
    records,
    throwaway_postgres,
)

from mlrepo.prediction_store import engine_url, metadata, migrations, prediction_log


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return build_project(tmp_path_factory.mktemp("log"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres | str]:
    """A server this session controls, or the URL of an external one (DATABASE_URL)."""
    external = os.environ.get("DATABASE_URL", "")
    if external.startswith(("postgresql", "postgres://")):
        yield external
        return
    yield from throwaway_postgres(" and DATABASE_URL is not a PostgreSQL URL")


@dataclass
class Database:
    """One empty database for one test, and how to take it away and bring it back."""

    url: str
    outage: Callable[[], AbstractContextManager[None]] | None

    def rows(self) -> list[Any]:
        engine = sa.create_engine(engine_url(self.url))
        try:
            with engine.connect() as connection:
                query = sa.select(prediction_log).order_by(prediction_log.c.id)
                return list(connection.execute(query).mappings())
        finally:
            engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "predictions.db"
        yield Database(f"sqlite:///{path}", lambda: _sqlite_locked(path))
        return
    server: Postgres | str = request.getfixturevalue("postgres")
    base = server if isinstance(server, str) else server.url
    name = f"log_{uuid.uuid4().hex[:12]}"
    # No pool: the outage test restarts the server, which ends every open connection.
    admin = sa.create_engine(engine_url(base), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(engine_url(base)).set(database=name).render_as_string(hide_password=False)
    outage = None if isinstance(server, str) else lambda: _stopped(server)
    try:
        yield Database(url, outage)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _sqlite_locked(path: Any) -> Iterator[None]:
    """Another process's exclusive lock: no one else can read or write the file meanwhile."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("COMMIT")
        holder.close()


@contextmanager
def _stopped(server: Postgres) -> Iterator[None]:
    server.stop()
    try:
        yield
    finally:
        server.start()


@dataclass
class Sent:
    """What the clients were told: request id -> predictions, in order."""

    answers: dict[str, list[dict[str, Any]]]

    @property
    def rows(self) -> int:
        return sum(len(p) for p in self.answers.values())


def send(server: Server, project: Project, singles: int, batches: tuple[int, ...] = ()) -> Sent:
    answers: dict[str, list[dict[str, Any]]] = {}
    frame = project.features
    for i in range(singles):
        response = server.client.post("/predict", json=records(frame.iloc[[i % len(frame)]])[0])
        assert response.status_code == 200, response.text
        body = response.json()
        answers[body["request_id"]] = [
            {"class": body["class"], "probabilities": body["probabilities"]}
        ]
    for size in batches:
        response = server.client.post("/predict/batch", json=records(frame.iloc[:size]))
        assert response.status_code == 200, response.text
        answers[response.json()["request_id"]] = response.json()["predictions"]
    return Sent(answers)


def assert_logged(database: Database, *sent: Sent, model_version: str) -> None:
    """The log holds exactly one row per prediction sent, each as the client received it."""
    rows = database.rows()
    expected = {rid: p for s in sent for rid, p in s.answers.items()}
    assert len(rows) == sum(s.rows for s in sent)
    assert {(r["request_id"], r["position"]) for r in rows} == {
        (rid, i) for rid, predictions in expected.items() for i in range(len(predictions))
    }
    for row in rows:
        prediction = expected[row["request_id"]][row["position"]]
        assert row["predicted_class"] == str(prediction["class"])
        assert row["probabilities"] == prediction["probabilities"]
        assert row["model_version"] == model_version
        assert row["latency_ms"] > 0
        assert set(row["inputs"]) == {f"num_{i:02d}" for i in range(8)} | {"cat_0", "cat_1"}


def version(server: Server) -> str:
    return str(server.client.get("/model").json()["version"])


def test_graceful_shutdown_writes_every_buffered_prediction(
    project: Project, database: Database
) -> None:
    # The writer would wait 60 s before writing: only the shutdown flush can write these rows.
    env = {"DATABASE_URL": database.url, "MLREPO_LOG_FLUSH_SECONDS": "60"}
    env["MLREPO_LOG_BATCH_ROWS"] = env["MLREPO_LOG_MAX_ROWS"] = "100000"
    server = Server(project.root, env, "--model", "workspace")
    try:
        server.wait_until_log_up()
        model_version = version(server)
        sent = send(server, project, singles=12, batches=(1, 30))
        assert server.ready()["database"]["queued_rows"] == sent.rows == 43
        assert database.rows() == []
    finally:
        server.stop()
    assert_logged(database, sent, model_version=model_version)
    assert "prediction log closed: 43 rows written, 0 dropped" in server.output


def test_predictions_made_during_an_outage_are_written_when_the_database_returns(
    project: Project, database: Database
) -> None:
    if database.outage is None:
        pytest.skip("the PostgreSQL server of DATABASE_URL is not ours to stop")
    server = Server(project.root, fast_log(database.url), "--model", "workspace")
    try:
        server.wait_until_log_up()
        model_version = version(server)
        before = send(server, project, singles=5, batches=(10,))
        server.wait_until(lambda: len(database.rows()) == before.rows, what="rows written")
        with database.outage():
            during = send(server, project, singles=6, batches=(20,))  # still answered
            server.wait_until(lambda: server.ready()["database"]["status"] == "down", what="down")
            ready = server.ready()
            # Still ready: it predicts; the log's state is reported beside.
            assert ready["http_status"] == 200 and ready["ready"] is True
            assert ready["database"]["error"]
            assert ready["database"]["queued_rows"] == during.rows
            assert server.metric("mlrepo_prediction_log_database_up") == 0
            assert server.metric("mlrepo_prediction_log_queue_rows") == during.rows
        server.wait_until_log_up()
        after = send(server, project, singles=4)
        assert server.metric("mlrepo_prediction_log_database_up") == 1
        dropped = server.metric("mlrepo_prediction_log_dropped_rows_total", 'reason="buffer_full"')
        assert dropped == 0
    finally:
        server.stop()
    assert_logged(database, before, during, after, model_version=model_version)


def test_a_full_buffer_spills_to_disk_and_every_row_is_written_back(
    tmp_path: Any, project: Project
) -> None:
    path = tmp_path / "predictions.db"
    spill = tmp_path / "spill" / "rows.jsonl"
    env = fast_log(
        f"sqlite:///{path}",
        MLREPO_LOG_MAX_ROWS="10",
        MLREPO_LOG_BATCH_ROWS="5",
        MLREPO_LOG_SPILL_PATH=str(spill),
    )
    server = Server(project.root, env, "--model", "workspace")
    database = Database(f"sqlite:///{path}", None)
    try:
        server.wait_until_log_up()
        model_version = version(server)
        with _sqlite_locked(path):
            sent = send(server, project, singles=25, batches=(30,))
            server.wait_until(
                lambda: server.ready()["database"]["spilled_rows"] == 45, what="45 rows spilled"
            )
            assert server.ready()["database"]["queued_rows"] == 10
            assert spill.exists()
        server.wait_until(lambda: len(database.rows()) == 55, what="every row written")
        # The metrics come from the writer process's reports, every 0.1 s.
        server.wait_until(
            lambda: server.metric("mlrepo_prediction_log_spill_file_rows") == 0,
            timeout=5,
            what="the spill file counted as written back",
        )
        assert server.metric("mlrepo_prediction_log_spilled_rows_total") == 45
        assert server.ready()["database"]["dropped_rows"] == 0
    finally:
        server.stop()
    assert not spill.exists()
    assert_logged(database, sent, model_version=model_version)


def test_without_a_spill_file_a_full_buffer_drops_the_oldest_rows_and_counts_them(
    tmp_path: Any, project: Project
) -> None:
    path = tmp_path / "predictions.db"
    env = fast_log(
        f"sqlite:///{path}",
        MLREPO_LOG_MAX_ROWS="10",
        MLREPO_LOG_BATCH_ROWS="5",
        MLREPO_LOG_SPILL_PATH="off",
    )
    server = Server(project.root, env, "--model", "workspace")
    database = Database(f"sqlite:///{path}", None)
    try:
        server.wait_until_log_up()
        with _sqlite_locked(path):
            sent = send(server, project, singles=25)
            dropped = 'reason="buffer_full"'
            server.wait_until(
                lambda: (
                    server.metric("mlrepo_prediction_log_dropped_rows_total", dropped) == 15
                    and server.ready()["database"]["queued_rows"] == 10
                ),
                what="15 dropped, 10 kept",
            )
        server.wait_until(lambda: len(database.rows()) == 10, what="the 10 kept rows written")
    finally:
        server.stop()
    newest = list(sent.answers)[-10:]
    assert [row["request_id"] for row in database.rows()] == newest


def test_shutdown_with_the_database_away_gives_up_after_the_timeout_and_says_so(
    tmp_path: Any, project: Project
) -> None:
    path = tmp_path / "predictions.db"
    env = fast_log(
        f"sqlite:///{path}", MLREPO_LOG_SHUTDOWN_SECONDS="1", MLREPO_LOG_SPILL_PATH="off"
    )
    server = Server(project.root, env, "--model", "workspace")
    server.wait_until_log_up()
    with _sqlite_locked(path):
        send(server, project, singles=3)
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 20
    assert "3 row(s) dropped (database unreachable at shutdown and no spill file)" in server.output


def test_rows_unwritten_at_shutdown_are_spilled_and_written_at_the_next_start(
    tmp_path: Any, project: Project
) -> None:
    path = tmp_path / "predictions.db"
    spill = tmp_path / "rows.jsonl"
    env = fast_log(
        f"sqlite:///{path}", MLREPO_LOG_SHUTDOWN_SECONDS="1", MLREPO_LOG_SPILL_PATH=str(spill)
    )
    database = Database(f"sqlite:///{path}", None)
    server = Server(project.root, env, "--model", "workspace")
    server.wait_until_log_up()
    model_version = version(server)
    with _sqlite_locked(path):
        sent = send(server, project, singles=3, batches=(4,))
        server.stop()
    assert "7 row(s) saved to the spill file" in server.output
    assert spill.exists() and database.rows() == []
    again = Server(project.root, env, "--model", "workspace")
    try:
        again.wait_until(lambda: len(database.rows()) == 7, what="the spilled rows written")
    finally:
        again.stop()
    assert_logged(database, sent, model_version=model_version)
    assert not spill.exists()


def test_the_service_starts_and_answers_while_the_database_is_unreachable(
    project: Project,
) -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens on port 1
    env = fast_log(url, MLREPO_LOG_SHUTDOWN_SECONDS="1")
    server = Server(project.root, env, "--model", "workspace")
    try:
        server.wait_until(lambda: server.ready()["database"]["status"] == "down", what="down")
        ready = server.ready()
        assert ready["http_status"] == 200 and ready["model"]["loaded"] is True
        assert send(server, project, singles=2).rows == 2
        assert server.client.get("/health").status_code == 200
    finally:
        server.stop()


def migrate(project: Project, url: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mlrepo.cli", "serve", "--migrate", "--database-url", url]
    return subprocess.run(argv, cwd=project.root, capture_output=True, text=True, check=False)


def test_migrations_build_the_table_the_code_writes(project: Project, database: Database) -> None:
    done = migrate(project, database.url)
    assert done.returncode == 0, done.stderr
    assert migrate(project, database.url).returncode == 0  # again: nothing to do
    engine = sa.create_engine(engine_url(database.url), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            assert migrations.current(connection) == migrations.head()
            # The migrated schema is the one prediction_log.py declares, column for column.
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        with engine.begin() as connection:
            migrations.command.downgrade(migrations.config(connection), "base")
        assert not sa.inspect(engine).has_table("prediction_log")
    finally:
        engine.dispose()


def test_a_table_made_before_the_migrations_is_adopted(
    project: Project, database: Database
) -> None:
    engine = sa.create_engine(engine_url(database.url), poolclass=sa.NullPool)
    metadata.create_all(engine)  # as the service did before it had migrations
    engine.dispose()
    server = Server(project.root, fast_log(database.url), "--model", "workspace")
    try:
        server.wait_until_log_up()
        sent = send(server, project, singles=3)
        model_version = version(server)
    finally:
        server.stop()
    assert_logged(database, sent, model_version=model_version)
    engine = sa.create_engine(engine_url(database.url), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            assert migrations.current(connection) == migrations.head()
    finally:
        engine.dispose()


def _answer_for(server: Server, body: dict[str, Any], seconds: float) -> list[tuple[float, str]]:
    """Single-record requests, one after another, for ``seconds``: (time answered, request id)."""
    answered: list[tuple[float, str]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = server.client.post("/predict", json=body)
        assert response.status_code == 200
        answered.append((time.monotonic(), response.json()["request_id"]))
    return answered


def _writer_processes(server: Server) -> list[psutil.Process]:
    return log_writer_processes(server.process.pid)


def test_a_thread_writer_killed_with_the_server_loses_at_most_the_last_flush_interval(
    tmp_path: Any, project: Project
) -> None:
    flush = 0.2
    path = tmp_path / "predictions.db"
    env = fast_log(
        f"sqlite:///{path}", MLREPO_LOG_FLUSH_SECONDS=str(flush), MLREPO_LOG_WRITER="thread"
    )
    server = Server(project.root, env, "--model", "workspace")
    database = Database(f"sqlite:///{path}", None)
    server.wait_until_log_up()
    assert _writer_processes(server) == []
    answered = _answer_for(server, records(project.features.iloc[:1])[0], 3)
    killed = time.monotonic()
    server.kill()  # SIGKILL: no shutdown flush
    logged = {row["request_id"] for row in database.rows()}
    lost = [(t, rid) for t, rid in answered if rid not in logged]
    # The stated bound: the rows of the last flush interval, plus the batch being inserted;
    # one more second allows for a writer slowed by a busy machine.
    assert all(t > killed - flush - 1.0 for t, _ in lost), (len(lost), len(answered))
    assert len(logged) <= len(answered)


def test_the_writer_process_writes_what_it_was_handed_after_the_server_is_killed(
    tmp_path: Any, project: Project
) -> None:
    # A writer that would wait 60 s: every row is still in the writer process at the kill.
    path = tmp_path / "predictions.db"
    env = fast_log(f"sqlite:///{path}", MLREPO_LOG_FLUSH_SECONDS="60")
    env["MLREPO_LOG_BATCH_ROWS"] = env["MLREPO_LOG_MAX_ROWS"] = "100000"
    server = Server(project.root, env, "--model", "workspace")
    database = Database(f"sqlite:///{path}", None)
    server.wait_until_log_up()
    [writer] = _writer_processes(server)
    answered = _answer_for(server, records(project.features.iloc[:1])[0], 2)
    killed = time.monotonic()
    server.kill()  # SIGKILL: no shutdown, no flush by the server
    writer.wait(30)  # it reads the end of its pipe, writes everything, exits (else: timeout)
    logged = {row["request_id"] for row in database.rows()}
    lost = [t for t, rid in answered if rid not in logged]
    # Only what was answered but not yet handed over (the feeder sends within milliseconds).
    assert all(t > killed - 0.5 for t in lost), (len(lost), len(answered))
    assert len(logged) >= len(answered) - len(lost) > 0
    assert "the server is gone; writing what it handed over" in server.output


def test_a_killed_writer_process_is_replaced_and_the_log_goes_on(
    tmp_path: Any, project: Project
) -> None:
    path = tmp_path / "predictions.db"
    server = Server(project.root, fast_log(f"sqlite:///{path}"), "--model", "workspace")
    database = Database(f"sqlite:///{path}", None)
    try:
        server.wait_until_log_up()
        model_version = version(server)
        before = send(server, project, singles=3, batches=(20,))
        server.wait_until(lambda: len(database.rows()) == before.rows, what="rows written")
        sent = [before]
        for kill in range(2):  # a writer that replaced a killed one can be replaced in turn
            server.wait_until(lambda: server.ready()["database"]["queued_rows"] == 0, what="idle")
            [writer] = _writer_processes(server)
            writer.kill()
            writer.wait(10)
            sent.append(send(server, project, singles=4, batches=(10,)))  # answered meanwhile
            server.wait_until(
                lambda old=writer.pid: {p.pid for p in _writer_processes(server)} - {old},
                what=f"writer process {kill + 2}",
            )
            total = sum(s.rows for s in sent)
            server.wait_until(lambda n=total: len(database.rows()) == n, what="later rows written")
        assert server.output.count("the writer process exited (code -9); starting a new one") == 2
        # /ready's state comes from the writer's reports, every 0.1 s: a new writer shows
        # "connecting" until its first.
        server.wait_until(
            lambda: (
                (server.ready()["database"]["status"], server.ready()["database"]["written_rows"])
                == ("up", total)
            ),
            what="the new writer up and every row counted",
        )
        # Each held nothing (it had reported every row it was given as written).
        exited = 'reason="writer_exit"'
        assert server.metric("mlrepo_prediction_log_dropped_rows_total", exited) == 0
    finally:
        server.stop()
    assert_logged(database, *sent, model_version=model_version)
