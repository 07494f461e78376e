"""The backend's HTTP API: the original's four endpoints plus sync and health.

Every endpoint calls the same functions the schedulers call (``backend.sync``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field

from rechecker.api import (
    build_app,
    get_settings,
    get_store,
)
from rechecker.backend import sync as steps
from rechecker.backend.tracker import SyncOutcome, SyncTracker
from rechecker.config import Settings
from rechecker.domains import InvalidDomainError, normalize_domain, normalize_target, shown
from rechecker.inventory import Inventory, InventoryError, Rejected, create_inventory
from rechecker.models import Site
from rechecker.redact import redact_text
from rechecker.scheduling import Periodic
from rechecker.store import Store, create_store


class RejectedRow(BaseModel):
    inventory_id: str | None
    value: str
    reason: str


class QueryDbResponse(BaseModel):
    count: int
    sites: list[Site]
    rejected: list[RejectedRow]


class CheckDbResponse(BaseModel):
    to_add: list[Site]
    to_remove: list[str]
    rejected: list[RejectedRow]
    inventory_sites: int
    store_sites: int
    removal_blocked: str | None


class AddNewRequest(BaseModel):
    targets: list[str] | None = Field(
        None,
        description="Domains or URLs to add by hand; omit to add what the inventory has new.",
        max_length=10_000,
    )


class AddNewResponse(BaseModel):
    added: list[str]
    rejected: list[RejectedRow]


class DeleteOldRequest(BaseModel):
    domains: list[str] | None = Field(
        None,
        description="Domains to stop monitoring; omit to remove what left the inventory.",
        max_length=10_000,
    )


class DeleteOldResponse(BaseModel):
    removed: list[str]
    removal_blocked: str | None = None


class SyncResponse(BaseModel):
    added: list[str]
    removed: list[str]
    rejected: list[RejectedRow]
    removal_blocked: str | None


def get_inventory(request: Request) -> Inventory:
    inventory: Inventory = request.app.state.inventory
    return inventory


def get_tracker(request: Request) -> SyncTracker:
    tracker: SyncTracker = request.app.state.tracker
    return tracker


StoreDep = Annotated[Store, Depends(get_store)]
InventoryDep = Annotated[Inventory, Depends(get_inventory)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TrackerDep = Annotated[SyncTracker, Depends(get_tracker)]
Force = Annotated[bool, Query(description="Apply removals even when the drop looks suspicious.")]

router = APIRouter()


def _rejected(rows: list[Rejected]) -> list[RejectedRow]:
    return [RejectedRow(inventory_id=r.inventory_id, value=r.value, reason=r.reason) for r in rows]


async def _plan(
    store: Store, inventory: Inventory, settings: Settings, force: bool
) -> steps.SyncPlan:
    try:
        return await steps.check_db(
            store, inventory, max_drop_ratio=settings.sync_max_drop_ratio, force=force
        )
    except InventoryError as exc:
        raise HTTPException(status_code=502, detail=str(exc)) from exc


@router.get("/query_db", response_model=QueryDbResponse, summary="Read the inventory")
async def query_db(inventory: InventoryDep) -> QueryDbResponse:
    """The inventory's active sites, normalised, and the rows refused with their reason."""
    try:
        read = await steps.query_db(inventory)
    except InventoryError as exc:
        raise HTTPException(status_code=502, detail=str(exc)) from exc
    return QueryDbResponse(
        count=len(read.sites), sites=read.sites, rejected=_rejected(read.rejected)
    )


@router.post("/add_new", response_model=AddNewResponse, summary="Add sites")
async def add_new(
    store: StoreDep,
    inventory: InventoryDep,
    settings: SettingsDep,
    request: Annotated[AddNewRequest | None, Body()] = None,
) -> AddNewResponse:
    """Add the inventory's new sites, or the given domains/URLs.

    Sites added by hand that are not in the inventory are removed again by the next
    ``delete_old``: the inventory stays the source of truth.
    """
    if request is None or request.targets is None:
        plan = await _plan(store, inventory, settings, force=False)
        added = await steps.add_new(store, plan.to_add)
        return AddNewResponse(added=added, rejected=_rejected(plan.rejected))
    sites: list[Site] = []
    rejected: list[RejectedRow] = []
    for value in request.targets:
        try:
            target = normalize_target(value)
        except InvalidDomainError as exc:
            echo = redact_text(shown(value))
            rejected.append(RejectedRow(inventory_id=None, value=echo, reason=exc.reason))
            continue
        sites.append(Site(domain=target.domain, url=target.url))
    if rejected and not sites:
        raise HTTPException(
            status_code=422,
            detail=[
                {"loc": ["body", "targets", i], "msg": r.reason, "type": "value_error"}
                for i, r in enumerate(rejected)
            ],
        )
    return AddNewResponse(added=await steps.add_new(store, sites), rejected=rejected)


@router.get("/check_db", response_model=CheckDbResponse, summary="Diff inventory and store")
async def check_db(
    store: StoreDep, inventory: InventoryDep, settings: SettingsDep, force: Force = False
) -> CheckDbResponse:
    """What a sync would add and remove; changes nothing."""
    plan = await _plan(store, inventory, settings, force)
    return CheckDbResponse(
        to_add=plan.to_add,
        to_remove=plan.to_remove,
        rejected=_rejected(plan.rejected),
        inventory_sites=plan.inventory_sites,
        store_sites=plan.store_sites,
        removal_blocked=plan.removal_blocked,
    )


@router.post("/delete_old", response_model=DeleteOldResponse, summary="Remove sites")
async def delete_old(
    store: StoreDep,
    inventory: InventoryDep,
    settings: SettingsDep,
    request: Annotated[DeleteOldRequest | None, Body()] = None,
    force: Force = False,
) -> DeleteOldResponse:
    """Remove the sites that left the inventory (guarded), or exactly the given domains.

    Given domains are normalised like every other name (``Example.COM.`` removes
    ``example.com``); one that is not a domain refuses the whole request with a 422 naming it,
    so that a typo in a removal list never half-applies.
    """
    if request is not None and request.domains is not None:
        domains, errors = [], []
        for index, value in enumerate(request.domains):
            try:
                domains.append(normalize_domain(value))
            except InvalidDomainError as exc:
                errors.append(
                    {"loc": ["body", "domains", index], "msg": exc.reason, "type": "value_error"}
                )
        if errors:
            raise HTTPException(status_code=422, detail=errors)
        return DeleteOldResponse(removed=await steps.delete_old(store, domains))
    plan = await _plan(store, inventory, settings, force)
    if plan.removal_blocked:
        return DeleteOldResponse(removed=[], removal_blocked=plan.removal_blocked)
    return DeleteOldResponse(removed=await steps.delete_old(store, plan.to_remove))


@router.post("/sync", response_model=SyncResponse, summary="Add new and remove old sites")
async def sync(
    store: StoreDep,
    inventory: InventoryDep,
    settings: SettingsDep,
    tracker: TrackerDep,
    force: Force = False,
) -> SyncResponse:
    """One full sync from one inventory read."""
    try:
        report = await tracker.track(
            "sync",
            lambda: steps.sync(
                store, inventory, max_drop_ratio=settings.sync_max_drop_ratio, force=force
            ),
        )
    except InventoryError as exc:
        raise HTTPException(status_code=502, detail=str(exc)) from exc
    return SyncResponse(
        added=report.added,
        removed=report.removed,
        rejected=_rejected(report.rejected),
        removal_blocked=report.removal_blocked,
    )


@router.get("/sync/status", response_model=dict[str, SyncOutcome], summary="Last sync outcomes")
async def sync_status(tracker: TrackerDep) -> dict[str, SyncOutcome]:
    """The last outcome of each sync job: what it added and removed, or why it did not."""
    return tracker.last


def create_app(settings: Settings) -> FastAPI:
    """The backend app; its lifespan opens the store and starts both sync schedulers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = create_store(settings.resolved_store_url)
        inventory = create_inventory(settings)
        await store.open()
        app.state.settings = settings
        app.state.store = store
        app.state.inventory = inventory
        app.state.registry = registry = CollectorRegistry()
        app.state.tracker = tracker = SyncTracker(registry)
        app.state.schedulers = [
            Periodic(
                "schedule_db_sync",
                settings.db_sync_interval,
                lambda: tracker.track(
                    "schedule_db_sync", lambda: steps.schedule_db_sync(store, inventory)
                ),
            ),
            Periodic(
                "schedule_db_check",
                settings.db_check_interval,
                lambda: tracker.track(
                    "schedule_db_check",
                    lambda: steps.schedule_db_check(
                        store, inventory, max_drop_ratio=settings.sync_max_drop_ratio
                    ),
                ),
            ),
        ]
        if settings.schedulers_enabled:
            for scheduler in app.state.schedulers:
                scheduler.start()
        try:
            yield
        finally:
            for scheduler in app.state.schedulers:
                await scheduler.stop()
            await inventory.close()
            await store.close()

    return build_app(
        "Rechecker backend",
        "Keeps the monitored sites equal to the inventory's active rows.",
        lifespan,
        router,
        settings,
    )
