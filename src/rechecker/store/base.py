"""The store contract: what every store backend (SQL, MongoDB) must do, and nothing more.

The components talk to each other only through the store: backend writes ``sites``, core
reads ``sites`` and writes ``status`` and ``history``, frontend reads ``status``. A shared
contract test suite runs against every implementation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rechecker.models import CheckResult, HistoryPoint, Incident, Site


class StoreError(Exception):
    """The store could not be reached or refused an operation; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Sites one worker may check now; ``token`` identifies this claim for completing it."""

    token: str
    sites: list[Site]


class Store(ABC):
    """Sites to monitor, the latest status of each, and the history of every check."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and make sure the schema exists."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise StoreError unless the store answers now."""

    # --- sites -----------------------------------------------------------------------------
    @abstractmethod
    async def list_sites(self) -> list[Site]:
        """Every monitored site, ordered by domain."""

    @abstractmethod
    async def get_site(self, domain: str) -> Site | None: ...

    @abstractmethod
    async def add_sites(self, sites: Sequence[Site]) -> list[str]:
        """Add the sites not yet present (an existing domain gets its URL updated).

        Returns the domains that were new. Safe to repeat and to run concurrently (two
        callers racing on the same new domain may both report it; it is stored once).
        """

    @abstractmethod
    async def remove_sites(self, domains: Sequence[str]) -> list[str]:
        """Stop monitoring these domains; their history stays until retention removes it.

        Returns the domains that were present.
        """

    # --- shared work ------------------------------------------------------------------------
    @abstractmethod
    async def claim_due(self, owner: str, now: datetime, lease_s: float, limit: int) -> Lease:
        """Lease up to ``limit`` sites that are due and not leased (or whose lease expired).

        Atomic across workers: a site is never leased to two live claims. A worker that dies
        loses its leases when they expire, and another worker claims the sites.
        """

    @abstractmethod
    async def complete_lease(
        self, token: str, domains: Sequence[str], next_due_at: datetime
    ) -> int:
        """Release these sites of claim ``token`` and make them due again at ``next_due_at``.

        Sites whose lease was lost (expired and claimed by another) are left alone.
        """

    @abstractmethod
    async def release_leases(self, owner: str) -> int:
        """Give back every lease ``owner`` holds, without changing when sites are due."""

    @abstractmethod
    async def next_due_at(self) -> datetime | None:
        """When the earliest site is due (None without sites)."""

    # --- results ---------------------------------------------------------------------------
    @abstractmethod
    async def record_results(self, results: Sequence[CheckResult]) -> None:
        """Append each result to ``history`` and make it the domain's latest ``status``.

        Results for domains that are no longer monitored go to history only.
        """

    @abstractmethod
    async def list_status(self) -> list[CheckResult]:
        """The latest result of every monitored domain that has been checked."""

    @abstractmethod
    async def get_status(self, domain: str) -> CheckResult | None: ...

    @abstractmethod
    async def get_statuses(self, domains: Sequence[str]) -> dict[str, CheckResult]:
        """The latest result of each of these domains that has one (for state transitions)."""

    @abstractmethod
    async def history(self, domain: str, limit: int = 100) -> list[CheckResult]:
        """The domain's results, newest first."""

    @abstractmethod
    async def history_points(self, domain: str, since: datetime) -> list[HistoryPoint]:
        """The domain's checks since ``since``, oldest first, without detail."""

    @abstractmethod
    async def purge_history(self, before: datetime) -> int:
        """Delete history older than ``before`` (the retention limit); returns how many."""

    # --- incidents ---------------------------------------------------------------------------
    @abstractmethod
    async def save_incidents(self, incidents: Sequence[Incident]) -> None:
        """Insert new incidents and update existing ones (by id): opening and closing."""

    @abstractmethod
    async def get_incidents(self, ids: Sequence[str]) -> list[Incident]:
        """The incidents with these ids (those that exist)."""

    @abstractmethod
    async def list_incidents(
        self, *, domain: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[Incident]:
        """Incidents, the most recently started first."""
