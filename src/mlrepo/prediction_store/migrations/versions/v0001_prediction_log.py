"""The prediction_log table (as the service created it before migrations existed).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("prediction_log"):
        return  # made by metadata.create_all before the migrations: the same shape
    op.create_table(
        "prediction_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("predicted_class", sa.String(256), nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.UniqueConstraint("request_id", "position", name="uq_prediction_log_request_position"),
    )
    op.create_index("ix_prediction_log_created_at", "prediction_log", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_log_created_at", table_name="prediction_log")
    op.drop_table("prediction_log")
