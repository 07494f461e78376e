"""The store contract: the same assertions against every store backend, on real servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rechecker.models import (
    CheckResult,
    DnsOutcome,
    DnsResult,
    HttpOutcome,
    HttpResult,
    Site,
    State,
)
from rechecker.store import Store, StoreError, create_store

BACKENDS = ["sqlite", "mariadb", "postgres", "ferretdb"]


def store_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """A fresh, empty store of the given backend; servers come from tests.support.databases."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    server = request.getfixturevalue(backend)
    return str(server.create_database(f"store_{uuid.uuid4().hex[:12]}"))


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    instance = create_store(store_url(request, request.param, tmp_path))
    await instance.open()
    try:
        yield instance
    finally:
        await instance.close()


def result(domain: str, *, up: bool, at: datetime | None = None) -> CheckResult:
    return CheckResult(
        domain=domain,
        url=f"https://{domain}/",
        timestamp=at or datetime.now(UTC),
        state=State.UP if up else State.DOWN,
        status_code=200 if up else 503,
        error_class="" if up else "http_http_status",
        error_message="" if up else "HTTP 503 Service Unavailable",
        latency_ms=12.5,
        dns=DnsResult(outcome=DnsOutcome.OK, addresses=["192.0.2.1"], resolver="127.0.0.1:53"),
        http=HttpResult(
            url=f"https://{domain}/",
            outcome=HttpOutcome.OK if up else HttpOutcome.HTTP_STATUS,
            status_code=200 if up else 503,
        ),
    )


async def test_sites_are_added_once_and_listed_in_order(store: Store) -> None:
    added = await store.add_sites(
        [
            Site(domain="b.example", url="https://b.example/"),
            Site(domain="a.example", url="https://a.example/"),
        ]
    )
    assert sorted(added) == ["a.example", "b.example"]
    again = await store.add_sites([Site(domain="a.example", url="https://a.example/new")])
    assert again == []
    listed = await store.list_sites()
    assert [s.domain for s in listed] == ["a.example", "b.example"]
    assert listed[0].url == "https://a.example/new"
    assert listed[0].added_at.tzinfo is not None


async def test_results_become_status_and_history(store: Store) -> None:
    await store.add_sites([Site(domain="a.example", url="https://a.example/")])
    earlier = datetime.now(UTC) - timedelta(minutes=8)
    await store.record_results([result("a.example", up=False, at=earlier)])
    await store.record_results([result("a.example", up=True)])

    latest = await store.get_status("a.example")
    assert latest is not None
    assert latest.ok and latest.error_message == "" and latest.status_code == 200
    assert latest.dns.addresses == ["192.0.2.1"]
    assert latest.timestamp.tzinfo is not None

    past = await store.history("a.example")
    assert [r.state for r in past] == [State.UP, State.DOWN]
    assert past[1].error_message == "HTTP 503 Service Unavailable"
    assert past[1].timestamp == earlier.replace(microsecond=past[1].timestamp.microsecond)
    assert [r.domain for r in await store.list_status()] == ["a.example"]


async def test_removing_a_site_keeps_its_history_but_not_its_status(store: Store) -> None:
    await store.add_sites([Site(domain="gone.example", url="https://gone.example/")])
    await store.record_results([result("gone.example", up=True)])
    assert await store.remove_sites(["gone.example", "never.example"]) == ["gone.example"]
    assert await store.get_site("gone.example") is None
    assert await store.list_status() == []
    assert len(await store.history("gone.example")) == 1


async def test_results_for_unmonitored_domains_go_to_history_only(store: Store) -> None:
    await store.record_results([result("stranger.example", up=False)])
    assert await store.get_status("stranger.example") is None
    assert len(await store.history("stranger.example")) == 1


async def test_naive_timestamps_are_refused(store: Store) -> None:
    await store.add_sites([Site(domain="a.example", url="https://a.example/")])
    naive = result("a.example", up=True).model_copy(
        update={"timestamp": datetime(2022, 8, 23, 12, 36)}
    )
    with pytest.raises((StoreError, ValueError)):
        await store.record_results([naive])


async def test_an_unreachable_store_raises_store_error_without_secrets(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    broken = create_store(f"sqlite+aiosqlite:///{tmp_path / 'blocker' / 'store.sqlite3'}")
    with pytest.raises(StoreError):
        await broken.open()


async def test_history_older_than_retention_is_purged(store: Store) -> None:
    await store.add_sites([Site(domain="a.example", url="https://a.example/")])
    now = datetime.now(UTC)
    await store.record_results(
        [
            result("a.example", up=True, at=now - timedelta(days=40)),
            result("a.example", up=True, at=now),
        ]
    )
    assert await store.purge_history(now - timedelta(days=30)) == 1
    assert [r.timestamp.date() for r in await store.history("a.example")] == [now.date()]
    assert (await store.get_status("a.example")) is not None


async def test_concurrent_adds_from_two_replicas_do_not_conflict(
    request: pytest.FixtureRequest, store: Store
) -> None:
    """Two backends syncing at once both succeed, and every site is there once."""
    sites = [Site(domain=f"s{n}.example", url=f"https://s{n}.example/") for n in range(300)]
    added = await asyncio.gather(store.add_sites(sites), store.add_sites(list(reversed(sites))))
    assert set(added[0]) | set(added[1]) == {s.domain for s in sites}
    assert len(await store.list_sites()) == 300


@pytest.mark.parametrize("backend", ["sqlite", "mariadb", "postgres"])
async def test_the_migrated_schema_is_the_model(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    """Migrations, not create_all, make the schema: what they build must equal the code's."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy.engine import Connection

    from rechecker.store.sql import SqlStore, metadata

    sql_store = SqlStore(store_url(request, backend, tmp_path))
    await sql_store.open()
    try:

        def diff(connection: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(connection), metadata))

        async with sql_store.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
        await sql_store.close()
        await sql_store.open()  # a second open finds the schema current and changes nothing
    finally:
        await sql_store.close()


async def test_incidents_open_close_and_list(store: Store) -> None:
    from rechecker.models import Incident

    started = datetime.now(UTC) - timedelta(hours=1)
    first = Incident(id="i1", domain="a.example", started_at=started, cause="dns_nxdomain")
    other = Incident(id="i2", domain="b.example", started_at=started + timedelta(minutes=5))
    await store.save_incidents([first, other])
    assert [i.id for i in await store.list_incidents(open_only=True)] == ["i2", "i1"]
    closed = first.model_copy(update={"ended_at": started + timedelta(minutes=30)})
    await store.save_incidents([closed])
    assert [i.id for i in await store.list_incidents(open_only=True)] == ["i2"]
    [back] = await store.list_incidents(domain="a.example")
    assert back.duration_s == 30 * 60 and back.cause == "dns_nxdomain"
    assert {i.id for i in await store.get_incidents(["i1", "i2", "nope"])} == {"i1", "i2"}


async def test_state_tracking_fields_survive_the_round_trip(store: Store) -> None:
    await store.add_sites([Site(domain="a.example", url="https://a.example/")])
    since = datetime.now(UTC) - timedelta(minutes=16)
    down = result("a.example", up=False).model_copy(
        update={
            "verdict": State.DOWN,
            "state_since": since,
            "consecutive_failures": 3,
            "incident_id": "i9",
        }
    )
    await store.record_results([down])
    statuses = await store.get_statuses(["a.example", "b.example"])
    assert list(statuses) == ["a.example"]
    back = statuses["a.example"]
    assert (back.verdict, back.consecutive_failures, back.incident_id) == (State.DOWN, 3, "i9")
    assert back.state_since is not None
    assert abs((back.state_since - since).total_seconds()) < 0.001
    [point] = await store.history_points("a.example", since)
    assert (point.verdict, point.latency_ms) == (State.DOWN, 12.5)


async def test_leases_split_due_sites_between_workers(store: Store) -> None:
    now = datetime.now(UTC)
    await store.add_sites(
        [Site(domain=f"s{n:03d}.example", url="https://x/", added_at=now) for n in range(10)]
    )
    first = await store.claim_due("worker-a", now, lease_s=60, limit=6)
    second = await store.claim_due("worker-b", now, lease_s=3600, limit=6)
    assert len(first.sites) == 6 and len(second.sites) == 4
    assert not {s.domain for s in first.sites} & {s.domain for s in second.sites}
    assert (await store.claim_due("worker-c", now, lease_s=60, limit=6)).sites == []

    later = now + timedelta(minutes=8)
    done = await store.complete_lease(first.token, [s.domain for s in first.sites], later)
    assert done == 6
    assert (await store.claim_due("worker-c", now + timedelta(seconds=1), 60, 10)).sites == []
    due_again = await store.claim_due("worker-c", later, lease_s=60, limit=10)
    assert {s.domain for s in due_again.sites} == {s.domain for s in first.sites}
    next_due = await store.next_due_at()
    assert next_due is not None and next_due <= later


async def test_an_expired_lease_is_claimed_again_and_the_old_claim_cannot_complete(
    store: Store,
) -> None:
    now = datetime.now(UTC)
    await store.add_sites([Site(domain="a.example", url="https://a.example/", added_at=now)])
    dead = await store.claim_due("dead-worker", now, lease_s=30, limit=10)
    assert [s.domain for s in dead.sites] == ["a.example"]
    after_expiry = now + timedelta(seconds=31)
    taken = await store.claim_due("live-worker", after_expiry, lease_s=30, limit=10)
    assert [s.domain for s in taken.sites] == ["a.example"]
    assert await store.complete_lease(dead.token, ["a.example"], now + timedelta(hours=1)) == 0
    assert await store.complete_lease(taken.token, ["a.example"], now + timedelta(minutes=8)) == 1


async def test_releasing_leases_makes_sites_claimable_at_once(store: Store) -> None:
    now = datetime.now(UTC)
    await store.add_sites(
        [Site(domain=f"r{n}.example", url="https://x/", added_at=now) for n in range(3)]
    )
    await store.claim_due("stopping-worker", now, lease_s=300, limit=10)
    assert await store.release_leases("stopping-worker") == 3
    assert len((await store.claim_due("other", now, lease_s=300, limit=10)).sites) == 3


async def test_concurrent_claims_never_overlap(store: Store) -> None:
    now = datetime.now(UTC)
    await store.add_sites(
        [Site(domain=f"c{n:03d}.example", url="https://x/", added_at=now) for n in range(300)]
    )
    leases = await asyncio.gather(
        *(store.claim_due(f"w{n}", now, lease_s=60, limit=40) for n in range(10))
    )
    claimed = [s.domain for lease in leases for s in lease.sites]
    assert len(claimed) == len(set(claimed))
    rest = await store.claim_due("last", now, lease_s=60, limit=1000)
    assert len(claimed) + len(rest.sites) == 300


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_worker_sees_what_a_sync_in_another_process_changed(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    """Core and backend are separate processes with a store each: a site the backend adds
    is claimed, a changed URL is checked, a removed site is neither claimed nor shown."""
    url = store_url(request, backend, tmp_path)
    worker, backend_store = create_store(url), create_store(url)
    await worker.open()
    await backend_store.open()
    try:
        now = datetime.now(UTC)
        assert (await worker.claim_due("w", now, lease_s=60, limit=10)).sites == []
        await backend_store.add_sites(
            [Site(domain="new.example", url="https://new.example/", added_at=now)]
        )
        lease = await worker.claim_due("w", now, lease_s=60, limit=10)
        assert [s.url for s in lease.sites] == ["https://new.example/"]
        await worker.record_results([result("new.example", up=True)])
        assert await worker.complete_lease(lease.token, ["new.example"], now) == 1

        await backend_store.add_sites([Site(domain="new.example", url="https://new.example/v2")])
        lease = await worker.claim_due("w", now, lease_s=60, limit=10)
        assert [s.url for s in lease.sites] == ["https://new.example/v2"]
        assert await worker.complete_lease(lease.token, ["new.example"], now) == 1

        assert await backend_store.remove_sites(["new.example"]) == ["new.example"]
        assert (await worker.claim_due("w", now, lease_s=60, limit=10)).sites == []
        assert await worker.get_status("new.example") is None
        assert await worker.list_status() == []
        assert await worker.next_due_at() is None
    finally:
        await worker.close()
        await backend_store.close()


async def test_a_worker_losing_a_race_for_sites_claims_others(store: Store) -> None:
    """Two workers claiming at the same moment both get work while enough is due: losing
    the race for the first sites is no reason to come back empty-handed (a worker stops its
    cycle on an empty claim)."""
    now = datetime.now(UTC)
    await store.add_sites(
        [Site(domain=f"q{n:02d}.example", url="https://x/", added_at=now) for n in range(20)]
    )
    first, second = await asyncio.gather(
        store.claim_due("w1", now, lease_s=60, limit=10),
        store.claim_due("w2", now, lease_s=60, limit=10),
    )
    assert len(first.sites) == len(second.sites) == 10
    assert not {s.domain for s in first.sites} & {s.domain for s in second.sites}
