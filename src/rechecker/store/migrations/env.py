"""Alembic environment: migrations run on the connection the store hands over.

The store runs ``upgrade head`` itself when it opens (``SqlStore.open``), so there is no
alembic.ini to keep in sync; ``rechecker.store.sql.metadata`` is the target schema.
"""

from __future__ import annotations

from alembic import context

from rechecker.store.sql import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
