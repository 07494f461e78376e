"""The core's HTTP API: the original's ``endpoint``, ``http`` and ``dns``, plus status and health.

``schedule_healthcheck_sync`` runs in the app's lifespan and calls :func:`run_cycle`, the same
function ``rechecker cycle`` uses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from rechecker.alerts import Alerter
from rechecker.api import (
    ErrorResponse,
    build_app,
    domain_param,
    get_store,
)
from rechecker.config import Settings
from rechecker.core.checker import check_site
from rechecker.core.metrics import CoreMetrics, SchedulerCollector
from rechecker.core.service import CheckService
from rechecker.core.summary import WINDOWS, Summary, summarize
from rechecker.core.worker import LeaseWorker
from rechecker.models import CheckResult, DnsResult, HttpResult, Incident, Site, utcnow
from rechecker.probes import PROBES, ProbeContext, ProbeSettings
from rechecker.scheduling import Periodic
from rechecker.security import ssrf
from rechecker.store import Store, StoreError, create_store


class DomainStatus(BaseModel):
    site: Site | None
    status: CheckResult | None
    summary: Summary
    incidents: list[Incident]
    history: list[CheckResult]


def get_probe_context(request: Request) -> ProbeContext:
    ctx: ProbeContext = request.app.state.probe_context
    return ctx


def get_address_policy(request: Request) -> ssrf.AddressPolicy:
    policy: ssrf.AddressPolicy = request.app.state.address_policy
    return policy


StoreDep = Annotated[Store, Depends(get_store)]
ProbeDep = Annotated[ProbeContext, Depends(get_probe_context)]
PolicyDep = Annotated[ssrf.AddressPolicy, Depends(get_address_policy)]
Domain = Annotated[str, Depends(domain_param)]

log = logging.getLogger(__name__)

router = APIRouter()

#: Seconds between deletions of history older than the retention period.
HISTORY_PURGE_INTERVAL = 3600.0
INCIDENT_LIMIT = 50
#: On shutdown, giving leases back may take this long before they are left to expire.
RELEASE_SECONDS = 10.0
#: On shutdown, alerts still queued get this long to go out.
ALERT_DRAIN_SECONDS = 10.0


async def _site_for(store: Store, domain: str) -> Site | None:
    """The monitored site, or None for a name that is not monitored."""
    return await store.get_site(domain)


@contextmanager
def _on_demand(
    domain: str, site: Site | None, policy: ssrf.AddressPolicy
) -> Iterator[tuple[Site, ssrf.Guard | None]]:
    """The site to check now, and the SSRF guard its probes run under: none for a monitored
    site (the inventory is trusted, as in scheduled checks); for any other name, at
    ``https://DOMAIN/``, a guard whose refusals end the request in a 403 with no result."""
    if site is not None:
        yield site, None
        return
    with ssrf.guarding(policy) as guard:
        yield Site(domain=domain, url=f"https://{domain}/"), guard
    if guard.refused:
        reasons = sorted({f"{r.host} resolves to a {r.reason} address" for r in guard.refused})
        raise HTTPException(
            status_code=403,
            detail=(
                f"on-demand check of {domain} refused: {'; '.join(reasons)} "
                "(not monitored; RECHECKER_API__SSRF_ALLOW can permit it)"
            ),
        )


@router.get("/endpoint", response_model=list[Site], summary="Monitored sites")
async def endpoint(store: StoreDep) -> list[Site]:
    """The current list of monitored sites, as the scheduler sees it."""
    return await store.list_sites()


@router.post("/dns/{domain}", response_model=DnsResult, summary="Check a domain's DNS now")
async def dns(domain: Domain, store: StoreDep, ctx: ProbeDep, policy: PolicyDep) -> DnsResult:
    """An unmonitored name that resolves to a refused address is a 403, so that the API
    does not map internal names for its callers."""
    with _on_demand(domain, await _site_for(store, domain), policy) as (site, guard):
        result = await PROBES["dns"](site, ctx)
        assert isinstance(result, DnsResult)
        if guard is not None:
            guard.inspect(site.domain, result.addresses)
        return result


@router.post("/http/{domain}", response_model=HttpResult, summary="Check a domain's HTTP now")
async def http(domain: Domain, store: StoreDep, ctx: ProbeDep, policy: PolicyDep) -> HttpResult:
    with _on_demand(domain, await _site_for(store, domain), policy) as (site, _):
        result = await PROBES["http"](site, ctx)
        assert isinstance(result, HttpResult)
        return result


@router.post("/check/{domain}", response_model=CheckResult, summary="Full check now")
async def check(domain: Domain, store: StoreDep, ctx: ProbeDep, policy: PolicyDep) -> CheckResult:
    """DNS then HTTP, as the scheduler does; the result is not recorded."""
    with _on_demand(domain, await _site_for(store, domain), policy) as (site, _):
        return await check_site(site, ctx)


@router.get("/status", response_model=list[CheckResult], summary="Latest result per domain")
async def status(
    store: StoreDep,
    failing: Annotated[bool, Query(description="Only domains that are down.")] = False,
) -> list[CheckResult]:
    results = await store.list_status()
    if failing:
        results = [r for r in results if not r.ok]
    return sorted(results, key=lambda r: (r.ok, r.domain))


@router.get(
    "/status/{domain}",
    response_model=DomainStatus,
    summary="One domain in detail",
    responses={404: {"description": "Neither monitored nor ever checked", "model": ErrorResponse}},
)
async def domain_status(
    domain: Domain,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> DomainStatus:
    site = await store.get_site(domain)
    latest = await store.get_status(domain)
    if site is None and latest is None:
        raise HTTPException(status_code=404, detail=f"{domain} is not monitored")
    now = utcnow()
    points = await store.history_points(domain, now - max(WINDOWS.values()))
    return DomainStatus(
        site=site,
        status=latest,
        summary=summarize(points, now),
        incidents=await store.list_incidents(domain=domain, limit=INCIDENT_LIMIT),
        history=await store.history(domain, limit),
    )


@router.get("/incidents", response_model=list[Incident], summary="Open and recent incidents")
async def incidents(
    store: StoreDep,
    open_only: Annotated[bool, Query(alias="open", description="Only open incidents.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = INCIDENT_LIMIT,
) -> list[Incident]:
    """Incidents across the fleet, the most recent first, each with cause and duration."""
    return await store.list_incidents(open_only=open_only, limit=limit)


def create_app(settings: Settings) -> FastAPI:
    """The core app; its lifespan opens the store and the probes and starts the scheduler."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = create_store(settings.resolved_store_url)
        await store.open()
        async with ProbeContext(ProbeSettings.from_settings(settings)) as ctx:
            app.state.store = store
            app.state.probe_context = ctx
            app.state.address_policy = ssrf.AddressPolicy.from_entries(settings.api.ssrf_allow)
            app.state.registry = registry = CollectorRegistry()
            metrics = CoreMetrics(registry, per_domain=settings.metrics_per_domain)
            alerter = Alerter(settings.alerts, registry=registry)
            await alerter.start()
            app.state.service = service = CheckService(
                settings, store, ctx, metrics=metrics, alerter=alerter
            )
            app.state.worker = worker = LeaseWorker(service, settings.worker_id)
            metrics.watch_lag(lambda: worker.lag_s)
            scheduler = Periodic(
                "schedule_healthcheck_sync", settings.poll_interval, worker.run_due
            )
            retention = timedelta(days=settings.history_retention_days)
            app.state.schedulers = [
                scheduler,
                Periodic(
                    "purge_history",
                    HISTORY_PURGE_INTERVAL,
                    lambda: store.purge_history(utcnow() - retention),
                ),
            ]
            registry.register(SchedulerCollector(app.state.schedulers))
            if settings.schedulers_enabled:
                for periodic in app.state.schedulers:
                    periodic.start()
            try:
                yield
            finally:
                # SIGTERM: finish the batch in hand (or give it back), then release leases.
                worker.stopping = True
                for periodic in app.state.schedulers:
                    await periodic.stop(grace_s=settings.http_timeout + settings.dns_timeout)
                try:
                    # Bounded: with the store unreachable, the leases expire on their own.
                    await asyncio.wait_for(worker.release(), RELEASE_SECONDS)
                except (TimeoutError, StoreError) as exc:
                    log.warning("could not release leases on shutdown: %s", exc or "timeout")
                finally:
                    await alerter.stop(drain_timeout_s=ALERT_DRAIN_SECONDS)
                    await store.close()

    return build_app(
        "Rechecker core",
        "Checks every monitored domain's DNS and HTTP health on a schedule.",
        lifespan,
        router,
        settings,
    )
