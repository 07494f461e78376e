"""The inventory in a SQL database, in the original's table shape.

Table and column names and the "active" value are settings, so an existing inventory table
can be read as it is. Rechecker only ever runs one SELECT here: a read-only account is enough.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import column, event, make_url, select, table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rechecker.inventory.base import (
    Inventory,
    InventoryError,
    InventoryRead,
    InventoryRow,
    normalize_rows,
)
from rechecker.redact import redact_text, redact_url


class SqlInventory(Inventory):
    def __init__(
        self,
        url: str,
        *,
        table_name: str = "sites",
        id_column: str = "id",
        url_column: str = "base_url",
        domain_column: str = "udomain",
        status_column: str = "status",
        active_value: str = "active",
    ) -> None:
        self._url = make_url(url)
        self._engine: AsyncEngine | None = None
        source = table(
            table_name,
            column(id_column),
            column(url_column),
            column(domain_column),
            column(status_column),
        )
        self._query = (
            select(
                source.c[id_column].label("id"),
                source.c[url_column].label("url"),
                source.c[domain_column].label("domain"),
            )
            .where(source.c[status_column] == active_value)
            .order_by(source.c[id_column])
        )

    def describe(self) -> str:
        return redact_url(self._url.render_as_string(hide_password=False))

    async def read(self) -> InventoryRead:
        if self._engine is None:
            self._engine = create_async_engine(self._url, pool_pre_ping=True)
            if self._url.get_backend_name() == "sqlite":
                event.listen(self._engine.sync_engine, "connect", _lenient_sqlite_text)
        try:
            async with self._engine.connect() as conn:
                result = await conn.execute(self._query)
                rows = [
                    InventoryRow(
                        inventory_id=None if row.id is None else str(row.id),
                        url=_text(row.url),
                        domain=_text(row.domain),
                    )
                    for row in result
                ]
        except (SQLAlchemyError, OSError) as exc:
            raise InventoryError(
                f"cannot read inventory at {self.describe()}: {redact_text(str(exc))}"
            ) from exc
        return normalize_rows(rows)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


def _lenient_sqlite_text(dbapi_connection: Any, _: object) -> None:
    """SQLite keeps whatever bytes it was given in a TEXT column, and its driver refuses the
    whole result when one row is not UTF-8. Decoding leniently turns such bytes into U+FFFD,
    which normalisation refuses for that row alone, instead of the inventory going unreadable."""
    dbapi_connection.driver_connection.text_factory = _decode_lenient


def _decode_lenient(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
