"""Alembic's entry point: runs the migrations on the connection ``config.attributes`` holds."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from mlrepo.prediction_store import metadata

LOCK_ID = 7_301_122_551  # any constant: the advisory lock of the prediction-log migrations


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run the migrations through mlrepo.prediction_store.migrations.upgrade")
    if connection.dialect.name == "postgresql":
        # Held to the end of the transaction: a second worker waits, then finds nothing to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


run()
