"""A check cycle that overruns its interval, for real: the scheduler never starts a second
cycle over the first, nothing is checked twice because of it, and the lag shows on /metrics.
Also: a scheduler survives its job failing, and the event loop stalling under it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from rechecker.config import Settings
from rechecker.core.metrics import CoreMetrics, SchedulerCollector
from rechecker.core.service import CheckService
from rechecker.core.worker import LeaseWorker
from rechecker.probes import ProbeContext, ProbeSettings
from rechecker.scheduling import Periodic
from rechecker.store import StoreError, create_store
from tests.faults.components import world

SITES = 6
CHECK_SECONDS = 1.0
POLL_SECONDS = 0.2
SCHEDULER = "schedule_healthcheck_sync"
SCHEDULER_LAG = "rechecker_scheduler_lag_seconds"
CHECK_LAG = "rechecker_check_lag_seconds"


async def test_an_overrunning_cycle_never_overlaps_and_its_lag_is_reported(
    tmp_path: Path,
) -> None:
    with world(SITES, CHECK_SECONDS, "stall.test") as loopback:
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path,
            dns_resolvers=[loopback.resolver],
            dns_timeout=2.0,
            http_timeout=CHECK_SECONDS + 5,
            check_concurrency=2,
            claim_size=2,
            poll_interval=POLL_SECONDS,
            healthcheck_interval=3600,
        )
        store = create_store(settings.resolved_store_url)
        await store.open()
        registry = CollectorRegistry()
        try:
            await store.add_sites(loopback.sites())
            async with ProbeContext(ProbeSettings.from_settings(settings)) as ctx:
                metrics = CoreMetrics(registry)
                service = CheckService(settings, store, ctx, metrics=metrics)
                worker = LeaseWorker(service, "stall-worker")
                metrics.watch_lag(lambda: worker.lag_s)
                running, most_running = 0, 0

                async def job() -> None:
                    nonlocal running, most_running
                    running += 1
                    most_running = max(most_running, running)
                    try:
                        await worker.run_due()
                    finally:
                        running -= 1

                scheduler = Periodic(SCHEDULER, settings.poll_interval, job)
                registry.register(SchedulerCollector([scheduler]))
                scheduler.start()
                scheduler_lags: list[float] = []
                check_lags: list[float] = []
                try:
                    # One run claims two sites at a time: three claims of 1 s checks, a run
                    # of about 3 s against a 0.2 s interval. /metrics is read throughout.
                    while scheduler.status.runs < 2:
                        scheduler_lags.append(sample(registry, SCHEDULER_LAG, SCHEDULER))
                        check_lags.append(sample(registry, CHECK_LAG))
                        await asyncio.sleep(0.1)
                finally:
                    await scheduler.stop()
            history = {d: await store.history(d) for d in loopback.domains}
        finally:
            await store.close()
        most_in_flight = loopback.target.most_in_flight
        hits = dict(loopback.target.hits)

    assert most_running == 1
    assert most_in_flight <= settings.check_concurrency
    assert hits == dict.fromkeys(loopback.domains, 1)
    assert {d: len(rows) for d, rows in history.items()} == dict.fromkeys(loopback.domains, 1)
    # The overrun showed while it lasted; the claims found sites overdue.
    assert max(scheduler_lags) > 0
    assert max(check_lags) > 0


def sample(registry: CollectorRegistry, name: str, scheduler: str | None = None) -> float:
    labels = {"scheduler": scheduler} if scheduler else {}
    value = registry.get_sample_value(name, labels)
    assert value is not None, f"{name} not exported"
    return value


async def test_a_scheduler_survives_failures_and_a_stalled_event_loop() -> None:
    """A job that fails (the store away) or blocks the whole loop (a stalled process, a
    paused VM) is counted and shown; the scheduler runs on and never runs twice at once."""
    calls = 0
    running, most_running = 0, 0
    #: The lag the scheduler reported before each run, for the run before it.
    lags: list[float] = []

    async def job() -> None:
        nonlocal calls, running, most_running
        lags.append(scheduler.status.lag_s)
        calls += 1
        running += 1
        most_running = max(most_running, running)
        try:
            if calls % 2:
                raise StoreError("store unavailable at mysql://…: connection refused")
            time.sleep(0.3)  # blocks the event loop: everything stalls, timers included
        finally:
            running -= 1

    scheduler = Periodic("stalling", 0.05, job)
    scheduler.start()
    try:
        while scheduler.status.runs < 6:
            await asyncio.sleep(0.05)
    finally:
        await scheduler.stop()
    status = scheduler.status
    assert most_running == 1
    assert status.failures == (status.runs + 1) // 2
    assert status.runs >= 6
    # Each stalled run overran the interval, and the next run saw it reported.
    assert all(lag > 0 for lag in lags[2::2])
