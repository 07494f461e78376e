"""due times and leases on sites, for core workers sharing the work

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _timestamp() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("sites", sa.Column("next_due_at", _timestamp(), nullable=True))
    op.add_column("sites", sa.Column("lease_owner", sa.String(128), nullable=True))
    op.add_column("sites", sa.Column("lease_token", sa.String(64), nullable=True))
    op.add_column("sites", sa.Column("lease_expires_at", _timestamp(), nullable=True))
    op.execute("UPDATE sites SET next_due_at = added_at")
    with op.batch_alter_table("sites") as batch:
        batch.alter_column("next_due_at", existing_type=_timestamp(), nullable=False)
    op.create_index("ix_sites_next_due_at", "sites", ["next_due_at"])
    op.create_index("ix_sites_lease_token", "sites", ["lease_token"])
    op.create_index("ix_sites_lease_owner", "sites", ["lease_owner"])


def downgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        for column in ("lease_expires_at", "lease_token", "lease_owner", "next_due_at"):
            batch.drop_column(column)
