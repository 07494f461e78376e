"""A plain-file inventory: one domain or URL a line, for teams without an inventory database."""

from __future__ import annotations

from pathlib import Path

import anyio

from rechecker.inventory.base import (
    Inventory,
    InventoryError,
    InventoryRead,
    InventoryRow,
    normalize_rows,
)


class FileInventory(Inventory):
    """Lines are ``domain`` or ``URL``; blank lines and ``#`` comments are skipped.

    The line number serves as the inventory id so a rejected row can be found.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return f"file:{self.path}"

    async def read(self) -> InventoryRead:
        try:
            content = await anyio.Path(self.path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InventoryError(f"cannot read inventory file {self.path}: {exc}") from exc
        rows = []
        for number, line in enumerate(content.splitlines(), start=1):
            entry = line.split("#", 1)[0].strip()
            if entry:
                rows.append(InventoryRow(inventory_id=str(number), url=entry, domain=None))
        return normalize_rows(rows)
