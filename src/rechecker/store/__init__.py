"""Store backends behind one contract; :func:`open_store` picks one from a URL."""

from __future__ import annotations

from rechecker.store.base import Store, StoreError


def create_store(url: str) -> Store:
    """The store a URL names: ``mongodb://`` (or ``mongodb+srv://``) for MongoDB, any other
    for SQLAlchemy (``sqlite+aiosqlite://``, ``mysql+asyncmy://``, ``postgresql+asyncpg://``)."""
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from rechecker.store.mongo import MongoStore

        return MongoStore(url)
    from rechecker.store.sql import SqlStore

    return SqlStore(url)


__all__ = ["Store", "StoreError", "create_store"]
