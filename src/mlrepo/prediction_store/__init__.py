"""The prediction store: the table of every prediction the service made, and how to reach it.

One module owns the table (``prediction_log``, its schema managed by the Alembic scripts in
``migrations``), the engine (any SQLAlchemy URL: a SQLite file by default, PostgreSQL through
``postgresql://`` with psycopg 3), the writing of rows (``insert_rows``) and the reading of
them. The service writes (``mlrepo.serve.prediction_log``); drift monitoring (a window of the
log) and the web app (traffic) read through ``read_rows``, which turns every way the database
can be unusable into one ``DataError`` naming the URL (password hidden) and the fix.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Float,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    make_url,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from mlrepo.errors import DataError, first_line

metadata = MetaData()
prediction_log = Table(
    "prediction_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),  # row of the record in its request, from 0
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("model_version", String(128), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("predicted_class", String(256), nullable=False),
    Column("probabilities", JSON, nullable=False),
    Column("latency_ms", Float, nullable=False),
    UniqueConstraint("request_id", "position", name="uq_prediction_log_request_position"),
)


def insert_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into the table, ignoring any already there (same request id and
    position). On SQLite the statement is compiled once and the rows go to sqlite3's
    executemany as tuples, each value through its column type's own bind processor (the bytes
    SQLAlchemy would store): SQLAlchemy's generic per-row work was 2/3 of a 10k-row write, on
    the service's log writer thread, holding the GIL the requests need."""
    dialect = connection.dialect
    if dialect.name != "sqlite" or not rows:
        connection.execute(_insert(dialect.name), rows)
        return
    sql, columns = _sqlite_insert(dialect, tuple(rows[0]))
    params = [
        tuple(row[name] if process is None else process(row[name]) for name, process in columns)
        for row in rows
    ]
    connection.exec_driver_sql(sql, params)


def _insert(dialect: str) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(prediction_log).on_conflict_do_nothing(
            index_elements=["request_id", "position"]
        )
    if dialect == "sqlite":
        return sqlite.insert(prediction_log).on_conflict_do_nothing()
    return prediction_log.insert()


@functools.lru_cache(maxsize=8)
def _sqlite_insert(dialect: Dialect, keys: tuple[str, ...]) -> tuple[str, list[tuple[str, Any]]]:
    """The compiled SQLite insert of rows with ``keys``, and each parameter's processor (the
    engine's own dialect: its JSON serializer passes ``JsonText`` through)."""
    compiled = _insert("sqlite").compile(dialect=dialect, column_keys=list(keys))
    columns = []
    for name in compiled.positiontup or []:
        process = prediction_log.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if name == "created_at" and process is not None:
            process = _once_per_value(process)
        columns.append((name, process))
    return compiled.string, columns


def _once_per_value(process: Any) -> Any:
    """``process``, remembering its last result: the rows of a request share one time."""
    last: list[Any] = [object(), None]

    def remembered(value: Any) -> Any:
        if value is not last[0]:
            last[:] = [value, process(value)]
        return last[1]

    return remembered


class JsonText(str):
    """A value already serialized to JSON: the engine's JSON serializer passes it through."""


def dumps(value: Any) -> str:
    # orjson writes NaN as null (PostgreSQL rejects the NaN token) and is several times faster.
    return orjson.dumps(value).decode()


def _json(value: Any) -> str:
    return value if isinstance(value, JsonText) else dumps(value)


@dataclass
class LogSettings:
    url: str = "sqlite:///predictions.db"
    max_rows: int = 100_000  # buffered rows beyond which the oldest are dropped
    batch_rows: int = 1_000  # rows per INSERT transaction
    flush_seconds: float = 0.5  # longest a row waits before a write is attempted
    retry_min_seconds: float = 0.1  # backoff after a failure, doubling up to the max
    retry_max_seconds: float = 5.0
    ping_seconds: float = 1.0  # an idle writer checks the database this often
    shutdown_seconds: float = 10.0  # how long close() waits for an unreachable database
    connect_timeout_seconds: float = 2.0
    spill_path: str | None = None  # a file for rows beyond max_rows; None: drop them
    spill_max_bytes: int = 1 << 30
    extra: dict[str, Any] = field(default_factory=dict)  # more create_engine() arguments


def engine_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (SQLAlchemy's default is psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def build_engine(settings: LogSettings) -> Engine:
    url = make_url(engine_url(settings.url))
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        connect_args["timeout"] = settings.connect_timeout_seconds  # waiting for a lock
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    elif url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = max(1, round(settings.connect_timeout_seconds))
    return create_engine(
        url,
        json_serializer=_json,
        pool_pre_ping=True,
        connect_args=connect_args,
        **settings.extra,
    )


def safe_url(url: str) -> str:
    """``url`` as messages show it: the password hidden."""
    return make_url(engine_url(url)).render_as_string(hide_password=True)


def read_rows(
    url: str,
    columns: list[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    newest: int | None = None,
    missing: str,
    fix: str,
) -> list[Row[Any]]:
    """``columns`` of the rows logged in [``since``, ``until``), oldest first; with ``newest``,
    only that many of the most recent. ``missing`` is the message for a SQLite file that does
    not exist, ``fix`` what to check when the database cannot be read."""
    parsed = make_url(engine_url(url))
    safe = safe_url(url)
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).is_file():
        raise DataError(f"{safe}: {missing}")
    engine = build_engine(LogSettings(url=url))
    # SQLite keeps times as text without an offset: compare with naive UTC times.
    naive = engine.dialect.name == "sqlite"
    log = prediction_log.c
    query = select(*(log[name] for name in columns))
    if since is not None:
        query = query.where(log.created_at >= (since.replace(tzinfo=None) if naive else since))
    if until is not None:
        query = query.where(log.created_at < (until.replace(tzinfo=None) if naive else until))
    if newest is not None:
        query = query.order_by(log.id.desc()).limit(newest)
    else:
        query = query.order_by(log.id)
    try:
        with engine.connect() as connection:
            rows = list(connection.execute(query).all())
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise DataError(
            f"{safe}: cannot read the prediction log: {first_line(cause)}. Fix: {fix}"
        ) from None
    finally:
        engine.dispose()
    return rows[::-1] if newest is not None else rows
