"""Alembic migrations of the prediction-log table.

``upgrade(url)`` (``mlrepo serve --migrate``; the service's log writer does the same before its
first write) brings a database to the latest revision. A table made before the migrations
existed (by ``metadata.create_all``) has the first revision's shape: the first revision adopts
it instead of failing. On PostgreSQL an advisory lock keeps two starting workers from
migrating at once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

HERE = Path(__file__).parent


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, in code (no alembic.ini): the scripts beside this module."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_connection(connection: Connection, revision: str = "head") -> None:
    command.upgrade(config(connection), revision)


def upgrade(url: str | Engine, revision: str = "head") -> None:
    """Migrate the database of ``url`` (a URL as the service takes it, or an engine)."""
    from mlrepo.prediction_store import LogSettings, build_engine

    engine = url if isinstance(url, Engine) else build_engine(LogSettings(url=url))
    try:
        with engine.begin() as connection:
            upgrade_connection(connection, revision)
    finally:
        if not isinstance(url, Engine):
            engine.dispose()
