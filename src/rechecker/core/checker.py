"""One check of one site (DNS, then HTTP to the addresses found) and one cycle over all sites."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from rechecker.core.recorder import Recorder
from rechecker.core.state import Thresholds
from rechecker.models import CheckResult, Site, State, utcnow
from rechecker.probes import dns, http
from rechecker.probes.context import ProbeContext, pinned_addresses
from rechecker.store import Store

log = logging.getLogger(__name__)

#: The error class of a check that passed with warnings; the message lists them.
DEGRADED_CLASS = "degraded"


async def check_site(site: Site, ctx: ProbeContext) -> CheckResult:
    """Resolve once, then fetch over the resolved addresses, and give the check its verdict:
    DOWN on a failure, DEGRADED on a warning (slow, certificate expiring, resolvers that
    disagree), else UP."""
    timestamp = utcnow()
    dns_result = await dns.probe(site, ctx)
    if not dns_result.ok:
        return CheckResult(
            domain=site.domain,
            url=site.url,
            timestamp=timestamp,
            state=State.DOWN,
            verdict=State.DOWN,
            error_class=f"dns_{dns_result.outcome.value.lower()}",
            error_message=dns_result.message or dns_result.outcome.value,
            dns=dns_result,
        )
    token = None
    if urlsplit(site.url).hostname == site.domain:
        token = pinned_addresses.set({site.domain: dns_result.addresses})
    try:
        http_result = await http.probe(site, ctx)
    finally:
        if token is not None:
            pinned_addresses.reset(token)
    warnings = dns_result.warnings + http_result.warnings
    if not http_result.ok:
        verdict, error_class, message = (
            State.DOWN,
            f"http_{http_result.outcome.value.lower()}",
            http_result.message,
        )
    elif warnings:
        verdict, error_class, message = State.DEGRADED, DEGRADED_CLASS, "; ".join(warnings)
    else:
        verdict, error_class, message = State.UP, "", ""
    return CheckResult(
        domain=site.domain,
        url=site.url,
        timestamp=timestamp,
        state=verdict,
        verdict=verdict,
        status_code=http_result.status_code,
        error_class=error_class,
        error_message=message,
        latency_ms=round(http_result.latency_ms, 2),
        dns=dns_result,
        http=http_result,
    )


@dataclass(slots=True)
class CycleReport:
    started_at: datetime = field(default_factory=utcnow)
    sites: int = 0
    checked: int = 0
    up: int = 0
    down: int = 0
    duration_s: float = 0.0


async def run_cycle(
    store: Store,
    ctx: ProbeContext,
    *,
    concurrency: int,
    batch_size: int,
    sites: Sequence[Site] | None = None,
    recorder: Recorder | None = None,
) -> CycleReport:
    """Check every site (or the given ones) with at most ``concurrency`` checks in flight,
    recording results (state, incidents, alerts) in batches of ``batch_size``.

    ``recorder`` defaults to one with the default thresholds and no alerts.
    """
    report = CycleReport()
    started = time.perf_counter()
    recorder = recorder or Recorder(store, Thresholds())
    todo = list(sites) if sites is not None else await store.list_sites()
    report.sites = len(todo)
    pending: list[CheckResult] = []
    queue = iter(todo)

    writing = asyncio.Lock()
    behind: list[asyncio.Task[None]] = []

    async def flush() -> None:
        # One batch written at a time: concurrent transactions only wait on each other's
        # locks (SQLite answered "database is locked" under a benchmark).
        async with writing:
            batch = pending[:]
            pending.clear()
            if not batch:
                return
            recorded = await recorder.record(batch)
        for result in recorded:
            if result.ok:
                report.up += 1
            else:
                report.down += 1

    def write_behind() -> None:
        """Write the batch while checks go on: a check that waited for the store (another
        worker holding SQLite's write lock, a slow server) left its slot idle."""
        if not behind or behind[-1].done():
            behind.append(asyncio.create_task(flush()))

    async def worker() -> None:
        for site in queue:
            result = await check_site(site, ctx)
            report.checked += 1
            if not result.ok:
                log.info(
                    "%s check failed: %s",
                    result.domain,
                    result.error_message,
                    extra={"domain": result.domain, "error_class": result.error_class},
                )
            pending.append(result)
            if len(pending) >= 2 * batch_size:
                await flush()  # the store is a batch behind: wait, so memory stays bounded
            elif len(pending) >= batch_size:
                write_behind()

    workers = min(concurrency, len(todo))
    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        await asyncio.gather(*behind)
    await flush()
    report.duration_s = round(time.perf_counter() - started, 3)
    log.info(
        "check cycle done: %d checked, %d up, %d down in %.1fs",
        report.checked,
        report.up,
        report.down,
        report.duration_s,
        extra={"cycle": {"checked": report.checked, "up": report.up, "down": report.down}},
    )
    return report
