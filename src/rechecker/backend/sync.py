"""Inventory sync, in the original's four steps: query_db, add_new, check_db, delete_old.

``check_db`` only computes; ``add_new`` and ``delete_old`` change the store. Removal is
guarded: an inventory read that failed, came back empty, or would remove more than
``max_drop_ratio`` of the monitored sites removes nothing unless forced, because an
inventory outage must never empty the monitoring.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from rechecker.inventory import Inventory, InventoryRead, Rejected
from rechecker.models import Site
from rechecker.store import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SyncPlan:
    """What a sync would change; computing it changes nothing."""

    to_add: list[Site] = field(default_factory=list)
    to_remove: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    inventory_sites: int = 0
    store_sites: int = 0
    removal_blocked: str | None = None


@dataclass(slots=True)
class SyncReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    removal_blocked: str | None = None
    inventory_sites: int = 0


async def query_db(inventory: Inventory) -> InventoryRead:
    """The active sites of the inventory, normalised, with the rejected rows and reasons."""
    read = await inventory.read()
    for row in read.rejected:
        log.warning(
            "inventory row rejected: %s",
            row.reason,
            extra={"inventory_id": row.inventory_id, "reason": row.reason},
        )
    return read


async def check_db(
    store: Store, inventory: Inventory, *, max_drop_ratio: float, force: bool = False
) -> SyncPlan:
    """Compare inventory and store; return what to add and remove, and whether removal is safe."""
    read = await query_db(inventory)
    current = {site.domain: site for site in await store.list_sites()}
    wanted = {site.domain: site for site in read.sites}
    plan = SyncPlan(
        to_add=[site for site in wanted.values() if _changed(current.get(site.domain), site)],
        to_remove=sorted(set(current) - set(wanted)),
        rejected=read.rejected,
        inventory_sites=len(wanted),
        store_sites=len(current),
    )
    if not force:
        plan.removal_blocked = _removal_risk(plan, max_drop_ratio)
    return plan


def _changed(old: Site | None, new: Site) -> bool:
    return old is None or (old.url, old.inventory_id) != (new.url, new.inventory_id)


def _removal_risk(plan: SyncPlan, max_drop_ratio: float) -> str | None:
    if not plan.to_remove:
        return None
    if plan.inventory_sites == 0:
        return (
            f"the inventory returned no usable sites while {plan.store_sites} are monitored; "
            "nothing removed (use force to override)"
        )
    share = len(plan.to_remove) / plan.store_sites
    if share > max_drop_ratio:
        return (
            f"sync would remove {len(plan.to_remove)} of {plan.store_sites} sites "
            f"({share:.0%}), more than the allowed {max_drop_ratio:.0%}; nothing removed "
            "(use force to override)"
        )
    return None


async def add_new(store: Store, sites: Sequence[Site]) -> list[str]:
    """Add (or update the URL of) these sites; returns the domains that were new."""
    added = await store.add_sites(sites)
    if added:
        log.info("added %d sites", len(added), extra={"added": added[:50]})
    return added


async def delete_old(store: Store, domains: Sequence[str]) -> list[str]:
    """Stop monitoring these domains; returns those that were monitored."""
    removed = await store.remove_sites(domains)
    if removed:
        log.info("removed %d sites", len(removed), extra={"removed": removed[:50]})
    return removed


async def schedule_db_sync(store: Store, inventory: Inventory) -> SyncReport:
    """The original's add path: query the inventory, add what is new."""
    read = await query_db(inventory)
    return SyncReport(
        added=await add_new(store, read.sites),
        rejected=read.rejected,
        inventory_sites=len(read.sites),
    )


async def schedule_db_check(
    store: Store, inventory: Inventory, *, max_drop_ratio: float, force: bool = False
) -> SyncReport:
    """The original's purge path: find domains gone from the inventory, remove them if safe."""
    plan = await check_db(store, inventory, max_drop_ratio=max_drop_ratio, force=force)
    return await _apply_removal(store, plan)


async def sync(
    store: Store, inventory: Inventory, *, max_drop_ratio: float, force: bool = False
) -> SyncReport:
    """Both paths at once from one inventory read: add the new, remove the old if safe."""
    plan = await check_db(store, inventory, max_drop_ratio=max_drop_ratio, force=force)
    report = await _apply_removal(store, plan)
    report.added = await add_new(store, plan.to_add)
    return report


async def _apply_removal(store: Store, plan: SyncPlan) -> SyncReport:
    report = SyncReport(
        rejected=plan.rejected,
        removal_blocked=plan.removal_blocked,
        inventory_sites=plan.inventory_sites,
    )
    if plan.removal_blocked:
        log.error("removal blocked: %s", plan.removal_blocked)
    elif plan.to_remove:
        report.removed = await delete_old(store, plan.to_remove)
    return report
