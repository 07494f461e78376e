"""sites, status and history

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamp() -> sa.types.TypeEngine[datetime]:
    """UTC, naive in the database; microseconds kept on MySQL/MariaDB too."""
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _result_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("timestamp", _timestamp(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.String(32), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("domain", sa.String(253), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("inventory_id", sa.String(64), nullable=True),
        sa.Column("added_at", _timestamp(), nullable=False),
    )
    op.create_table(
        "status",
        sa.Column("domain", sa.String(253), primary_key=True),
        *_result_columns(),
    )
    op.create_table(
        "history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("domain", sa.String(253), nullable=False),
        *_result_columns(),
    )
    op.create_index("ix_history_domain_timestamp", "history", ["domain", "timestamp"])
    op.create_index("ix_history_timestamp", "history", ["timestamp"])


def downgrade() -> None:
    op.drop_table("history")
    op.drop_table("status")
    op.drop_table("sites")
