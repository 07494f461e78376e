"""What the last syncs did, for people (``GET /sync/status``) and for Prometheus (``/metrics``).

A blocked removal or an unreadable inventory must be visible without reading logs: an alert
on ``rechecker_sync_removal_blocked == 1`` or on the age of the last success catches both.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel

from rechecker.backend.sync import SyncReport
from rechecker.models import utcnow
from rechecker.redact import redact_text


class SyncOutcome(BaseModel):
    job: str
    finished_at: datetime
    ok: bool
    added: int = 0
    removed: int = 0
    rejected: int = 0
    inventory_sites: int | None = None
    removal_blocked: str | None = None
    error: str | None = None


class SyncTracker:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.last: dict[str, SyncOutcome] = {}
        self._runs = Counter(
            "rechecker_sync_runs",
            "Sync runs by job and outcome (ok, blocked, failed).",
            ["job", "outcome"],
            registry=registry,
        )
        self._added = Counter("rechecker_sites_added", "Sites added by sync.", registry=registry)
        self._removed = Counter(
            "rechecker_sites_removed", "Sites removed by sync.", registry=registry
        )
        self._blocked = Gauge(
            "rechecker_sync_removal_blocked",
            "1 while the last sync refused to remove sites as unsafe.",
            registry=registry,
        )
        self._inventory_sites = Gauge(
            "rechecker_inventory_sites",
            "Usable sites in the last inventory read.",
            registry=registry,
        )
        self._rejected = Gauge(
            "rechecker_inventory_rejected_rows",
            "Inventory rows refused by the last read (invalid or duplicate).",
            registry=registry,
        )
        self._last_success = Gauge(
            "rechecker_sync_last_success_timestamp_seconds",
            "Unix time of the last sync that read the inventory.",
            registry=registry,
        )
        self._failing = Gauge(
            "rechecker_inventory_up",
            "1 when the last inventory read succeeded, 0 when it failed.",
            registry=registry,
        )

    async def track(self, job: str, run: Callable[[], Awaitable[SyncReport]]) -> SyncReport:
        """Run one sync job and record its outcome; a failure is recorded and re-raised."""
        try:
            report = await run()
        except Exception as exc:
            self._runs.labels(job, "failed").inc()
            self._failing.set(0)
            self.last[job] = SyncOutcome(
                job=job,
                finished_at=utcnow(),
                ok=False,
                error=redact_text(f"{type(exc).__name__}: {exc}"),
            )
            raise
        outcome = "blocked" if report.removal_blocked else "ok"
        self._runs.labels(job, outcome).inc()
        self._failing.set(1)
        self._added.inc(len(report.added))
        self._removed.inc(len(report.removed))
        self._blocked.set(1 if report.removal_blocked else 0)
        self._inventory_sites.set(report.inventory_sites)
        self._rejected.set(len(report.rejected))
        self._last_success.set(time.time())
        self.last[job] = SyncOutcome(
            job=job,
            finished_at=utcnow(),
            ok=True,
            added=len(report.added),
            removed=len(report.removed),
            rejected=len(report.rejected),
            inventory_sites=report.inventory_sites,
            removal_blocked=report.removal_blocked,
        )
        return report
