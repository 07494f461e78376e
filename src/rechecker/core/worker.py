"""A core worker: claim due sites through leases, check them, record, repeat.

Any number of workers share one store. Each claims a batch of due sites with a lease (owner,
expiry); a site's next due time is set when its check is recorded, so every site is checked
once per interval and never by two workers at once. A worker that dies loses its leases when
they expire; one that stops gives them back. SQLite works too, for one machine.

A lease is completed only for sites whose result is in the store. While the store is down,
results wait in the recorder's buffer and their leases stay held; once the buffer is written
the leases are completed. A result that never reaches the store (dropped from a full buffer,
or the worker stopped first) leaves its lease to expire, and the site is checked again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rechecker.core.checker import CycleReport, run_cycle
from rechecker.core.service import CheckService
from rechecker.models import CheckResult, utcnow
from rechecker.store.base import Lease

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Claim:
    """One lease still held: its sites whose results are stored, and those still waiting."""

    token: str
    claimed_at: datetime
    expires_at: datetime
    next_due_at: datetime
    waiting: set[str]
    stored: set[str] = field(default_factory=set)


class LeaseWorker:
    def __init__(self, service: CheckService, owner: str) -> None:
        self.service = service
        self.owner = owner
        self.stopping = False
        #: How overdue the oldest due site was at the last claim: the check lag.
        self.lag_s = 0.0
        self._claims: list[_Claim] = []
        #: domain -> the claim waiting for its result.
        self._waiting: dict[str, _Claim] = {}
        service.recorder.subscribe(self._stored)

    async def run_due(self) -> CycleReport:
        """Claim and check batches until no site is due (or the worker is stopping)."""
        settings = self.service.settings
        store = self.service.store
        total = CycleReport()
        interval = timedelta(seconds=settings.healthcheck_interval)
        # Results an outage held back go first, then the leases they complete.
        await self._settle()
        while not self.stopping:
            now = utcnow()
            oldest = await store.next_due_at()
            self.lag_s = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
            lease = await store.claim_due(
                self.owner, now, settings.lease_seconds, settings.claim_size
            )
            if not lease.sites:
                break
            self._hold(lease, now, now + interval)
            report = await run_cycle(
                store,
                self.service.ctx,
                sites=lease.sites,
                recorder=self.service.recorder,
                concurrency=settings.check_concurrency,
                batch_size=settings.result_batch_size,
            )
            await self._settle()
            total.sites += report.sites
            total.checked += report.checked
            total.up += report.up
            total.down += report.down
        total.duration_s = round((utcnow() - total.started_at).total_seconds(), 3)
        if total.checked:
            self.service.observe_cycle(total)
        return total

    async def release(self) -> None:
        """Complete the leases whose results the store now has, then give back every other
        lease this worker holds, so others check those sites at once."""
        await self._settle()
        left = self.service.recorder.buffered
        if left:
            log.warning(
                "stopping with %d results the store never took", left, extra={"worker": self.owner}
            )
        released = await self.service.store.release_leases(self.owner)
        self._claims.clear()
        self._waiting.clear()
        if released:
            log.info("released %d leases", released, extra={"worker": self.owner})

    def _hold(self, lease: Lease, claimed_at: datetime, next_due_at: datetime) -> None:
        seconds = timedelta(seconds=self.service.settings.lease_seconds)
        claim = _Claim(
            token=lease.token,
            claimed_at=claimed_at,
            expires_at=claimed_at + seconds,
            next_due_at=next_due_at,
            waiting={site.domain for site in lease.sites},
        )
        self._claims.append(claim)
        for domain in claim.waiting:
            self._waiting[domain] = claim

    def _stored(self, results: Sequence[CheckResult]) -> None:
        """Recorder listener: these results are in the store; their sites' leases may end."""
        for result in results:
            claim = self._waiting.get(result.domain)
            # An older result of the same site (from an earlier claim) does not count.
            if claim is not None and result.timestamp >= claim.claimed_at:
                del self._waiting[result.domain]
                claim.waiting.discard(result.domain)
                claim.stored.add(result.domain)

    async def _settle(self) -> None:
        """Write buffered results, then complete the leases of sites whose results are
        stored; forget claims that expired meanwhile (their sites are free again)."""
        await self.service.recorder.flush()
        now = utcnow()
        for claim in list(self._claims):
            if claim.stored:
                await self.service.store.complete_lease(
                    claim.token, sorted(claim.stored), claim.next_due_at
                )
                claim.stored.clear()
            if not claim.waiting or claim.expires_at <= now:
                self._claims.remove(claim)
                for domain in claim.waiting:
                    if self._waiting.get(domain) is claim:
                        del self._waiting[domain]
