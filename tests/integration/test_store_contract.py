"""The store contract, run against every store backend (SQLite here; servers in later suites)."""

from __future__ import annotations

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


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    instance = create_store(url)
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
