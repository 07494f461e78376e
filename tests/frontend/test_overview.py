"""The overview's filtering, sorting and paging, and the snapshot cache, without Flask."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from rechecker.frontend.fleet import MESSAGE_LENGTH, PENDING, Fleet, FleetCache
from rechecker.frontend.formatting import (
    format_age,
    format_duration,
    format_ms,
    format_percent,
    format_utc,
)
from rechecker.frontend.overview import Filters, build_overview, search_terms
from rechecker.models import CheckResult, DnsOutcome, DnsResult, Site, State
from rechecker.store import StoreError

NOW = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)


def _result(i: int, state: State, latency: float | None = 50.0) -> CheckResult:
    return CheckResult(
        domain=f"d{i:03d}.example",
        url=f"https://d{i:03d}.example/",
        timestamp=NOW,
        state=state,
        state_since=NOW - timedelta(minutes=i),
        error_class="" if state is State.UP else f"class_{i % 3}",
        error_message="" if state is State.UP else "m" * 1000,
        latency_ms=latency,
        dns=DnsResult(outcome=DnsOutcome.OK),
    )


def _fleet(count: int = 130) -> Fleet:
    states = [State.DOWN, State.DEGRADED, State.UP, State.UP, State.UP]
    results = [_result(i, states[i % 5], None if i % 7 == 0 else float(i)) for i in range(count)]
    sites = [Site(domain=r.domain, url=r.url) for r in results]
    sites.append(Site(domain="zz-new.example", url="https://zz-new.example/", added_at=NOW))
    return Fleet(sites, results, loaded_at=NOW)


def test_fleet_counts_and_orders_failing_first() -> None:
    fleet = _fleet()
    assert fleet.counts.as_dict() == {
        "sites": 131,
        "down": 26,
        "degraded": 26,
        "up": 78,
        "pending": 1,
    }
    ranks = [row.rank for row in fleet.rows]
    assert ranks == sorted(ranks)
    assert fleet.rows[-1].state == PENDING
    assert all(len(row.message) <= MESSAGE_LENGTH for row in fleet.rows)
    assert fleet.error_classes == {"class_0": 18, "class_1": 17, "class_2": 17}


def test_fleet_sorts_once_per_order() -> None:
    fleet = _fleet()
    assert fleet.ordered("latency", True) is fleet.ordered("latency", True)
    by_latency = fleet.ordered("latency", True)
    values = [row.latency_ms for row in by_latency]
    measured = [v for v in values if v is not None]
    assert measured == sorted(measured, reverse=True)
    assert values[len(measured) :] == [None] * (len(values) - len(measured))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, Filters()),
        ({"sort": "nope", "dir": "sideways", "size": "7", "page": "-3"}, Filters()),
        ({"sort": "latency"}, Filters(sort="latency", descending=True)),
        ({"sort": "latency", "dir": "asc"}, Filters(sort="latency", descending=False)),
        (
            {"state": "failing", "size": "25", "page": "3"},
            Filters(state="failing", size=25, page=3),
        ),
        ({"q": "  x " * 200}, Filters(q=("  x " * 200).strip()[:253])),
    ],
)
def test_filters_from_query_string(args: dict[str, str], expected: Filters) -> None:
    assert Filters.from_args(args) == expected


def test_filter_links_leave_out_defaults() -> None:
    assert Filters().args() == {}
    view = Filters(q="shop", state="DOWN", sort="since", descending=True, size=25, page=3)
    assert view.args(page=1) == {
        "q": "shop",
        "state": "DOWN",
        "sort": "since",
        "dir": "desc",
        "size": 25,
    }
    assert view.sorted_by("since")["dir"] == "asc"
    assert view.sorted_by("domain") == {
        "q": "shop",
        "state": "DOWN",
        "sort": "domain",
        "dir": "asc",
        "size": 25,
    }
    assert Filters().sorted_by("state") == {"sort": "state", "dir": "desc"}


def test_pages_cover_the_matching_rows_once() -> None:
    fleet = _fleet()
    seen: list[str] = []
    for number in range(1, 7):
        overview = build_overview(fleet, Filters(size=25, page=number))
        assert overview.page.pages == 6
        seen.extend(row.domain for row in overview.rows)
    assert seen == [row.domain for row in fleet.rows]
    last = build_overview(fleet, Filters(size=25, page=99))
    assert last.page.number == 6
    assert (last.page.first, last.page.last, last.page.total) == (126, 131, 131)


def test_filters_combine() -> None:
    fleet = _fleet()
    overview = build_overview(fleet, Filters(q="d00", state="failing", error_class="class_0"))
    assert [row.domain for row in overview.rows] == ["d000.example", "d006.example"]
    nothing = build_overview(fleet, Filters(q="no-such-name"))
    assert nothing.rows == []
    assert (nothing.page.first, nothing.page.last, nothing.page.pages) == (0, 0, 1)


def test_search_terms_add_punycode_for_unicode_words() -> None:
    assert search_terms("Bücher  SHOP") == [("bücher", "xn--bcher-kva"), ("shop",)]
    assert search_terms("ü-") == [("ü-",)]


class _Source:
    """A stand-in for the store bridge that counts reads and can hold one back."""

    def __init__(self) -> None:
        self.closed = False
        self.reads = 0
        self.fail = False
        self.hold = threading.Event()
        self.hold.set()
        self.results = [_result(1, State.UP)]

    def list_sites(self) -> list[Site]:
        return []

    def list_status(self) -> list[CheckResult]:
        self.hold.wait(timeout=30)
        self.reads += 1
        if self.fail:
            raise StoreError("database is locked")
        return list(self.results)


def _join_reloads() -> None:
    for thread in threading.enumerate():
        if thread.name == "rechecker-frontend-fleet":
            thread.join(timeout=30)


def test_cache_serves_one_snapshot_until_it_is_stale() -> None:
    source = _Source()
    cache = FleetCache(source, max_age=3600)
    first = cache.get()
    assert cache.get() is first
    assert source.reads == 1


def test_cache_reloads_a_cheap_fleet_inside_the_request() -> None:
    source = _Source()
    cache = FleetCache(source, max_age=0)
    cache.get()
    source.results = [_result(1, State.DOWN)]
    assert cache.get().rows[0].state == "DOWN"
    source.fail = True
    with pytest.raises(StoreError):
        cache.get()


def test_cache_reloads_a_slow_fleet_in_the_background() -> None:
    source = _Source()
    cache = FleetCache(source, max_age=0, inline_budget=0, load_cost_factor=0)
    first = cache.get()
    source.hold.clear()
    source.results = [_result(1, State.DOWN)]
    # Stale: the request gets the old snapshot at once while a reload runs.
    assert cache.get() is first
    assert cache.get() is first
    source.hold.set()
    _join_reloads()
    assert cache.get().rows[0].state == "DOWN"
    assert cache.refresh_error is None


def test_cache_keeps_a_slow_fleet_when_a_background_reload_fails() -> None:
    source = _Source()
    cache = FleetCache(source, max_age=0, inline_budget=0, load_cost_factor=0)
    first = cache.get()
    source.fail = True
    assert cache.get() is first
    _join_reloads()
    assert cache.get() is first
    error = cache.refresh_error
    assert error is not None and error[1] == "database is locked"


def test_cache_refuses_once_the_store_is_closed() -> None:
    source = _Source()
    cache = FleetCache(source, max_age=3600)
    cache.get()
    source.closed = True
    with pytest.raises(StoreError, match="closed"):
        cache.get()


def test_prefetch_loads_before_the_first_request() -> None:
    source = _Source()
    cache = FleetCache(source, max_age=3600)
    cache.prefetch()
    cache.get()
    assert source.reads == 1


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (-5, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (3660, "1h 1m"),
        (86400, "1d"),
        (90000, "1d 1h"),
        (40 * 86400, "40d"),
    ],
)
def test_durations_read_in_two_units(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_formats() -> None:
    naive = datetime(2024, 5, 17, 8, 30, 15)
    assert format_utc(naive) == "2024-05-17 08:30:15 UTC"
    assert format_age(naive, NOW) == "3h 29m"
    assert format_ms(1234.56) == "1,234.6 ms"
    assert [format_percent(v) for v in (100.0, 99.987, 50.0, None)] == [
        "100 %",
        "99.987 %",
        "50 %",
        "—",
    ]
