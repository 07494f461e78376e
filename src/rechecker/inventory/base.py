"""The inventory contract: a read-only source of the sites a team wants monitored."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from rechecker.domains import InvalidDomainError, normalize_target
from rechecker.models import Site
from rechecker.redact import redact_text


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
    """Turn raw rows into sites, keeping the first row of each domain and a reason for the rest."""
    read = InventoryRead()
    seen: dict[str, str | None] = {}
    for row in rows:
        value = row.url or row.domain or ""
        shown = redact_text(value[:300])  # a URL in the inventory may carry a password
        try:
            target = normalize_target(value, domain=row.domain)
        except InvalidDomainError as exc:
            read.rejected.append(Rejected(row.inventory_id, shown, exc.reason))
            continue
        if target.domain in seen:
            first = seen[target.domain]
            reason = f"duplicate of {target.domain}" + (f" (inventory id {first})" if first else "")
            read.rejected.append(Rejected(row.inventory_id, shown, reason))
            continue
        seen[target.domain] = row.inventory_id
        read.sites.append(Site(domain=target.domain, url=target.url, inventory_id=row.inventory_id))
    return read


class Inventory(ABC):
    @abstractmethod
    async def read(self) -> InventoryRead:
        """Every active site; raises InventoryError when the source cannot be read."""

    @abstractmethod
    def describe(self) -> str:
        """Where this inventory lives, safe to log (passwords masked)."""

    async def close(self) -> None:  # noqa: B027 - most sources hold nothing open
        """Release connections, if the source keeps any."""
