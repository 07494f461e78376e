"""Store backends behind one contract; :func:`open_store` picks one from a URL."""

from __future__ import annotations

from rechecker.store.base import Store, StoreError


def create_store(url: str) -> Store:
    """A store for a SQLAlchemy URL (``sqlite+aiosqlite://``, ``mysql+asyncmy://``, …)."""
    from rechecker.store.sql import SqlStore

    return SqlStore(url)


__all__ = ["Store", "StoreError", "create_store"]
