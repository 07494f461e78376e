"""Inventories for tests, in the original's table shape, built from the loopback targets."""

from __future__ import annotations

from pathlib import Path

from rechecker.config import Settings
from rechecker.inventory.sample import write_inventory
from tests.support.targets import Targets


def inventory_rows(targets: Targets) -> list[tuple[int, str, str, str]]:
    """Every target as an active row, plus an inactive one and one that is not a domain."""
    rows = [
        (6000 + number, url, "active", domain)
        for number, (domain, url) in enumerate(sorted(targets.urls().items()))
    ]
    rows.append((6900, f"http://retired.test:{targets.http_port}/", "inactive", "retired.test"))
    rows.append((6901, "javascript:alert(1)", "active", ""))
    return rows


def use_inventory(settings: Settings, rows: list[tuple[int, str, str, str]]) -> Path:
    """Write ``rows`` to the settings' inventory (the SQLite file the settings point at)."""
    path = settings.sample_inventory_path
    write_inventory(path, rows, settings.inventory_table)
    return path
