"""state thresholds on status, verdict on results, incidents

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _timestamp() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    for table in ("status", "history"):
        op.add_column(table, sa.Column("verdict", sa.String(16), nullable=True))
    op.add_column("status", sa.Column("state_since", _timestamp(), nullable=True))
    op.add_column(
        "status",
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "status",
        sa.Column("consecutive_successes", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("status", sa.Column("incident_id", sa.String(64), nullable=True))
    with op.batch_alter_table("status") as batch:
        batch.alter_column("consecutive_failures", server_default=None)
        batch.alter_column("consecutive_successes", server_default=None)
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("started_at", _timestamp(), nullable=False),
        sa.Column("ended_at", _timestamp(), nullable=True),
        sa.Column("cause", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_incidents_domain_started", "incidents", ["domain", "started_at"])
    op.create_index("ix_incidents_started", "incidents", ["started_at"])


def downgrade() -> None:
    op.drop_table("incidents")
    with op.batch_alter_table("status") as batch:
        for column in (
            "incident_id",
            "consecutive_successes",
            "consecutive_failures",
            "state_since",
        ):
            batch.drop_column(column)
        batch.drop_column("verdict")
    with op.batch_alter_table("history") as batch:
        batch.drop_column("verdict")
