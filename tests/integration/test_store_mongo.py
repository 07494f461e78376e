"""What only the MongoDB store has to get right, on FerretDB: data left in the layout of one
schedule, lease and status document per site, and a site scheduled twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from rechecker.models import Site
from rechecker.store import Store, create_store
from tests.integration.test_store_contract import result


@pytest.fixture
async def url(ferretdb: Any) -> str:
    return str(ferretdb.create_database(f"mongo_{uuid.uuid4().hex[:12]}"))


@pytest.fixture
async def raw(url: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """The database itself, to write what the store would not."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    try:
        yield client.get_default_database()
    finally:
        await client.close()


async def opened(url: str) -> Store:
    store = create_store(url)
    await store.open()
    return store


async def test_data_of_the_per_site_layout_is_carried_over(
    url: str, raw: AsyncDatabase[dict[str, Any]]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    later = now + timedelta(minutes=8)
    domains = ["due.example", "later.example", "unscheduled.example"]
    await raw.sites.insert_many(
        [
            {"_id": d, "domain": d, "url": f"https://{d}/", "inventory_id": None, "added_at": now}
            for d in domains
        ]
    )
    await raw.schedule.insert_many(
        [
            {"_id": "due.example", "next_due_at": now},
            {"_id": "later.example", "next_due_at": later},
        ]
    )
    await raw.leases.insert_one(
        {
            "_id": "due.example",
            "domain": "due.example",
            "owner": "old-worker",
            "token": "t",
            "expires_at": later,
        }
    )
    old = result("due.example", up=False, at=now).model_dump(mode="json", exclude={"timestamp"})
    await raw.status.insert_one({"_id": "due.example", **old, "timestamp": now})
    await raw.history.insert_one({"_id": "due.example@old", **old, "timestamp": now})

    store = await opened(url)
    try:
        [status] = await store.list_status()
        assert (status.domain, status.status_code, status.timestamp) == ("due.example", 503, now)
        assert status.dns.addresses == ["192.0.2.1"]
        [past] = await store.history("due.example")
        assert past.http is not None and past.http.status_code == 503
        assert await store.next_due_at() == now
        lease = await store.claim_due("new-worker", now, lease_s=3600, limit=10)
        assert [s.domain for s in lease.sites] == ["due.example", "unscheduled.example"]
        lease = await store.claim_due("other", later, lease_s=60, limit=10)
        assert [s.domain for s in lease.sites] == ["later.example"]
    finally:
        await store.close()
    assert await raw.schedule.count_documents({"domains": {"$exists": False}}) == 0
    assert await raw.status.count_documents({"domains": {"$exists": False}}) == 0


async def test_a_site_in_two_groups_is_checked_once_and_kept_in_one(
    url: str, raw: AsyncDatabase[dict[str, Any]]
) -> None:
    """Two syncs adding a site at the same moment, or a crash half-way through rewriting a
    group, leave it in two schedule groups: it is still claimed once, and once completed
    it is in one group only."""
    store = await opened(url)
    try:
        now = datetime.now(UTC)
        await store.add_sites([Site(domain="twice.example", url="https://x/", added_at=now)])
        [group] = [doc async for doc in raw.schedule.find({})]
        await raw.schedule.insert_one({**group, "_id": "copy-of-" + group["_id"]})

        first = await store.claim_due("a", now, lease_s=60, limit=10)
        assert [s.domain for s in first.sites] == ["twice.example"]
        assert (await store.claim_due("b", now, lease_s=60, limit=10)).sites == []
        later = now + timedelta(minutes=8)
        assert await store.complete_lease(first.token, ["twice.example"], later) == 1

        assert (await store.claim_due("b", now, lease_s=60, limit=10)).sites == []
        again = await store.claim_due("b", later, lease_s=60, limit=10)
        assert [s.domain for s in again.sites] == ["twice.example"]
        groups = [doc["domains"] async for doc in raw.schedule.find({})]
        assert groups == ["twice.example"]
    finally:
        await store.close()
