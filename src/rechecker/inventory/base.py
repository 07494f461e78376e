"""The inventory contract: a read-only source of the sites a team wants monitored."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from rechecker.domains import InvalidDomainError, normalize_target, shown
from rechecker.models import Site
from rechecker.redact import redact_text

#: The width of the store's ``sites.inventory_id`` column.
MAX_INVENTORY_ID_LENGTH = 64


class InventoryError(Exception):
    """The inventory could not be read; the message is safe to show (no secrets)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """An inventory row Rechecker will not monitor, and why."""

    inventory_id: str | None
    value: str
    reason: str


@dataclass(slots=True)
class InventoryRead:
    """One read of the inventory: the sites to monitor and the rows that were refused."""

    sites: list[Site] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InventoryRow:
    """A raw row as the source holds it, before normalisation."""

    inventory_id: str | None
    url: str | None
    domain: str | None


def normalize_rows(rows: list[InventoryRow]) -> InventoryRead:
    """Turn raw rows into sites, keeping the first row of each domain and a reason for the rest.

    A bad row is refused on its own: nothing in one row can make the whole read fail.
    """
    read = InventoryRead()
    seen: dict[str, str | None] = {}
    for row in rows:
        value = row.url or row.domain or ""
        echo = redact_text(shown(value))  # a URL in the inventory may carry a password
        id_problem = _id_problem(row.inventory_id)
        if id_problem is not None:
            read.rejected.append(Rejected(shown(row.inventory_id, 80), echo, id_problem))
            continue
        try:
            target = normalize_target(value, domain=row.domain)
        except InvalidDomainError as exc:
            read.rejected.append(Rejected(row.inventory_id, echo, exc.reason))
            continue
        if target.domain in seen:
            first = seen[target.domain]
            reason = f"duplicate of {target.domain}" + (f" (inventory id {first})" if first else "")
            read.rejected.append(Rejected(row.inventory_id, echo, reason))
            continue
        seen[target.domain] = row.inventory_id
        read.sites.append(Site(domain=target.domain, url=target.url, inventory_id=row.inventory_id))
    return read


def _id_problem(inventory_id: str | None) -> str | None:
    """Why the store could not keep this id, if it could not: it has a 64-character column,
    and a longer id or one with control characters would fail the whole batch of inserts
    there instead of this one row."""
    if inventory_id is None:
        return None
    if len(inventory_id) > MAX_INVENTORY_ID_LENGTH:
        return f"inventory id longer than {MAX_INVENTORY_ID_LENGTH} characters"
    if not inventory_id.isprintable():
        return "inventory id contains control characters"
    return None


class Inventory(ABC):
    @abstractmethod
    async def read(self) -> InventoryRead:
        """Every active site; raises InventoryError when the source cannot be read."""

    @abstractmethod
    def describe(self) -> str:
        """Where this inventory lives, safe to log (passwords masked)."""

    async def close(self) -> None:  # noqa: B027 - most sources hold nothing open
        """Release connections, if the source keeps any."""
