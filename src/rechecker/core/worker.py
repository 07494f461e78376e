"""A core worker: claim due sites through leases, check them, record, repeat.

Any number of workers share one store. Each claims a batch of due sites with a lease (owner,
expiry); a site's next due time is set when its check is recorded, so every site is checked
once per interval and never by two workers at once. A worker that dies loses its leases when
they expire; one that stops gives them back. SQLite works too, for one machine.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from rechecker.core.checker import CycleReport, run_cycle
from rechecker.core.service import CheckService
from rechecker.models import utcnow

log = logging.getLogger(__name__)


class LeaseWorker:
    def __init__(self, service: CheckService, owner: str) -> None:
        self.service = service
        self.owner = owner
        self.stopping = False
        #: How overdue the oldest due site was at the last claim: the check lag.
        self.lag_s = 0.0

    async def run_due(self) -> CycleReport:
        """Claim and check batches until no site is due (or the worker is stopping)."""
        settings = self.service.settings
        store = self.service.store
        total = CycleReport()
        interval = timedelta(seconds=settings.healthcheck_interval)
        while not self.stopping:
            now = utcnow()
            oldest = await store.next_due_at()
            self.lag_s = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
            lease = await store.claim_due(
                self.owner, now, settings.lease_seconds, settings.claim_size
            )
            if not lease.sites:
                break
            report = await run_cycle(
                store,
                self.service.ctx,
                sites=lease.sites,
                recorder=self.service.recorder,
                concurrency=settings.check_concurrency,
                batch_size=settings.result_batch_size,
            )
            await store.complete_lease(
                lease.token, [site.domain for site in lease.sites], now + interval
            )
            total.sites += report.sites
            total.checked += report.checked
            total.up += report.up
            total.down += report.down
        total.duration_s = round((utcnow() - total.started_at).total_seconds(), 3)
        if total.checked:
            self.service.observe_cycle(total)
        return total

    async def release(self) -> None:
        """Give back every lease this worker holds, so others check those sites at once."""
        released = await self.service.store.release_leases(self.owner)
        if released:
            log.info("released %d leases", released, extra={"worker": self.owner})
