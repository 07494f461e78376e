"""Sources of truth for what to monitor; :func:`create_inventory` picks one from settings."""

from __future__ import annotations

from pathlib import Path

from rechecker.config import Settings
from rechecker.inventory.base import Inventory, InventoryError, InventoryRead, Rejected
from rechecker.inventory.file import FileInventory
from rechecker.inventory.sample import ensure_sample_inventory
from rechecker.inventory.sql import SqlInventory


def create_inventory(settings: Settings) -> Inventory:
    """The configured inventory; with none configured, the sample one (created on first use)."""
    if settings.uses_sample_inventory:
        ensure_sample_inventory(settings.sample_inventory_path, settings.inventory_table)
    url = settings.resolved_inventory_url
    if url.startswith("file:"):
        return FileInventory(Path(url.removeprefix("file://").removeprefix("file:")))
    return SqlInventory(
        url,
        table_name=settings.inventory_table,
        id_column=settings.inventory_id_column,
        url_column=settings.inventory_url_column,
        domain_column=settings.inventory_domain_column,
        status_column=settings.inventory_status_column,
        active_value=settings.inventory_active_value,
    )


__all__ = ["Inventory", "InventoryError", "InventoryRead", "Rejected", "create_inventory"]
