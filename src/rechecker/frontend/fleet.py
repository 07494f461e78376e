"""A snapshot of the whole fleet for the overview, and the cache that keeps it fresh enough.

Reading every status from the store is the expensive part of the overview: at 100,000
domains the SQLite store needs seconds to hand back full results (JSON detail, model
validation), while filtering, sorting and paging the same rows in Python takes milliseconds.
So the overview reads the store at most once per snapshot, keeps only what its table shows
(:class:`Row`), and every request filters that in memory. The domain and incident pages read
the store directly: their queries are small.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import idna

from rechecker.frontend.formatting import as_utc, format_iso
from rechecker.models import CheckResult, Site, utcnow
from rechecker.store import StoreError

log = logging.getLogger(__name__)

#: The state shown for a monitored site that has no result yet.
PENDING = "PENDING"
#: Failing first: the order of the overview and of its "state" sort.
STATE_ORDER = ("DOWN", "DEGRADED", "UP", PENDING)
STATE_RANK = {state: rank for rank, state in enumerate(STATE_ORDER)}
#: Messages can be kilobytes long; the overview keeps and shows this much, the domain page all.
MESSAGE_LENGTH = 240
#: A snapshot that took this long to load is reloaded in the background, never in a request.
INLINE_LOAD_BUDGET_S = 0.5
#: A slow snapshot is kept at least this many times its load time, so reloading a huge fleet
#: cannot keep a core busy (and the GIL away from requests) all the time.
LOAD_COST_FACTOR = 4.0

SortKey = tuple[Any, ...]


def _unicode_form(domain: str) -> str:
    """The readable form of a punycode name, so ``bücher`` finds ``xn--bcher-kva.de``."""
    if "xn--" not in domain:
        return ""
    try:
        return idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return ""


def cut(text: str, length: int = MESSAGE_LENGTH) -> str:
    """At most ``length`` characters, the last an ellipsis when something was cut."""
    return text if len(text) <= length else text[: length - 1] + "…"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the overview: what the table and its JSON twin show, nothing more."""

    domain: str
    url: str
    state: str
    #: When the domain entered its state; for a site not yet checked, when it was added.
    since: datetime | None
    checked_at: datetime | None
    status_code: int | None
    error_class: str
    #: The error message, cut to :data:`MESSAGE_LENGTH`.
    message: str
    latency_ms: float | None
    incident_id: str | None
    #: Lowercased domain and, for punycode, its Unicode form: what search looks in.
    search: str

    @property
    def rank(self) -> int:
        return STATE_RANK[self.state]

    def as_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "url": self.url,
            "state": self.state,
            "since": format_iso(self.since) or None,
            "checked_at": format_iso(self.checked_at) or None,
            "status_code": self.status_code,
            "error_class": self.error_class,
            "message": self.message,
            "latency_ms": self.latency_ms,
            "incident_id": self.incident_id,
        }


def row_from_result(result: CheckResult) -> Row:
    domain = result.domain.lower()
    return Row(
        domain=result.domain,
        url=result.url,
        state=result.state.value,
        since=None if result.state_since is None else as_utc(result.state_since),
        checked_at=as_utc(result.timestamp),
        status_code=result.status_code,
        error_class=result.error_class,
        message=cut(result.error_message),
        latency_ms=result.latency_ms,
        incident_id=result.incident_id,
        search=f"{domain}\n{_unicode_form(domain)}",
    )


def row_from_site(site: Site) -> Row:
    domain = site.domain.lower()
    return Row(
        domain=site.domain,
        url=site.url,
        state=PENDING,
        since=as_utc(site.added_at),
        checked_at=None,
        status_code=None,
        error_class="",
        message="",
        latency_ms=None,
        incident_id=None,
        search=f"{domain}\n{_unicode_form(domain)}",
    )


@dataclass(frozen=True, slots=True)
class Counts:
    """Fleet-wide totals; they ignore the filters so the header never hides an outage."""

    sites: int
    down: int
    degraded: int
    up: int
    pending: int

    def as_dict(self) -> dict[str, int]:
        return {
            "sites": self.sites,
            "down": self.down,
            "degraded": self.degraded,
            "up": self.up,
            "pending": self.pending,
        }


def _sort_key(sort: str, descending: bool) -> Callable[[Row], SortKey]:
    """Ties always go by domain, ascending, and rows without a value always go last."""
    sign = -1 if descending else 1
    if sort == "state":
        return lambda r: (sign * r.rank, r.domain)
    if sort == "since":
        return lambda r: (r.since is None, sign * r.since.timestamp() if r.since else 0, r.domain)
    if sort == "latency":
        return lambda r: (r.latency_ms is None, sign * (r.latency_ms or 0.0), r.domain)
    raise ValueError(f"unknown sort {sort!r}")


class Fleet:
    """Every monitored domain at one moment, failing first, with totals and sorted views."""

    def __init__(
        self,
        sites: list[Site],
        statuses: list[CheckResult],
        *,
        loaded_at: datetime,
        load_seconds: float = 0.0,
    ) -> None:
        rows = [row_from_result(result) for result in statuses]
        checked = {row.domain for row in rows}
        rows.extend(row_from_site(site) for site in sites if site.domain not in checked)
        rows.sort(key=_sort_key("state", False))
        self.rows = rows
        #: When the store was read, and how long reading it took.
        self.loaded_at = loaded_at
        self.load_seconds = load_seconds
        states = Counter(row.state for row in rows)
        self.counts = Counts(
            sites=len(rows),
            down=states["DOWN"],
            degraded=states["DEGRADED"],
            up=states["UP"],
            pending=states[PENDING],
        )
        classes = Counter(row.error_class for row in rows if row.error_class)
        #: Error classes in the fleet with how many domains have each, most common first.
        self.error_classes = dict(sorted(classes.items(), key=lambda item: (-item[1], item[0])))
        self._orders: dict[tuple[str, bool], list[Row]] = {("state", False): rows}
        self._lock = threading.Lock()

    def ordered(self, sort: str, descending: bool) -> list[Row]:
        """All rows in this order; each order is sorted once per snapshot, then reused."""
        with self._lock:
            order = self._orders.get((sort, descending))
            if order is None:
                if sort == "domain":
                    order = sorted(self.rows, key=lambda r: r.domain, reverse=descending)
                else:
                    order = sorted(self.rows, key=_sort_key(sort, descending))
                self._orders[(sort, descending)] = order
            return order


class FleetSource(Protocol):
    """Where snapshots come from: the app's :class:`~rechecker.frontend.StoreBridge`."""

    @property
    def closed(self) -> bool: ...

    def list_sites(self) -> list[Site]: ...

    def list_status(self) -> list[CheckResult]: ...


class FleetCache:
    """The current :class:`Fleet`, reloaded from the store when it is older than ``max_age``.

    A small fleet reloads inside the request that finds it stale, so the page is never older
    than ``max_age``. A fleet that took longer than ``inline_budget`` to load is
    reloaded on a background thread while requests keep getting the previous snapshot (the
    page says how old it is), because no request should wait seconds for it. Only the first
    request, with no snapshot at all, has to wait; :meth:`prefetch` starts that load early.
    """

    def __init__(
        self,
        source: FleetSource,
        *,
        max_age: float,
        inline_budget: float = INLINE_LOAD_BUDGET_S,
        load_cost_factor: float = LOAD_COST_FACTOR,
    ) -> None:
        self._source = source
        self._max_age = max_age
        self._inline_budget = inline_budget
        self._load_cost_factor = load_cost_factor
        self._lock = threading.Lock()
        self._loaded = threading.Condition(self._lock)
        self._fleet: Fleet | None = None
        self._fetched_at = 0.0
        self._loading = False
        self._error: StoreError | None = None
        self._error_at: datetime | None = None

    @property
    def refresh_error(self) -> tuple[datetime, str] | None:
        """The last background reload's failure, while the snapshot it left stale is shown."""
        if self._error is None or self._error_at is None:
            return None
        return self._error_at, str(self._error).strip().splitlines()[0]

    def _slow(self, fleet: Fleet) -> bool:
        return fleet.load_seconds > self._inline_budget

    def _stale_after(self, fleet: Fleet) -> float:
        if not self._slow(fleet):
            return self._max_age
        return max(self._max_age, self._load_cost_factor * fleet.load_seconds)

    def get(self) -> Fleet:
        if self._source.closed:
            raise StoreError("the dashboard's store connection is closed")
        with self._lock:
            fleet = self._fleet
            if fleet is not None:
                age = time.monotonic() - self._fetched_at
                if age < self._stale_after(fleet):
                    return fleet
                if self._loading or self._slow(fleet):
                    self._start_background()
                    return fleet
            while self._loading:
                # Another request (or the prefetch) is loading: its snapshot will do.
                self._loaded.wait()
                if self._fleet is not None and self._fleet is not fleet:
                    return self._fleet
            self._loading = True
        return self._load()

    def prefetch(self) -> None:
        """Load the first snapshot on a background thread, before anyone asks for it."""
        with self._lock:
            if self._fleet is None:
                self._start_background()

    def _start_background(self) -> None:
        # Called with the lock held.
        if self._loading:
            return
        self._loading = True
        threading.Thread(
            target=self._load_quietly, name="rechecker-frontend-fleet", daemon=True
        ).start()

    def _load(self) -> Fleet:
        """Read the store (``self._loading`` is set by the caller) and publish the snapshot."""
        fleet: Fleet | None = None
        try:
            started = time.monotonic()
            sites = self._source.list_sites()
            statuses = self._source.list_status()
            fleet = Fleet(
                sites, statuses, loaded_at=utcnow(), load_seconds=time.monotonic() - started
            )
            log.debug("fleet snapshot: %d rows in %.3f s", len(fleet.rows), fleet.load_seconds)
            return fleet
        except StoreError as exc:
            with self._lock:
                self._error, self._error_at = exc, utcnow()
            raise
        finally:
            with self._lock:
                if fleet is not None:
                    self._fleet, self._fetched_at = fleet, time.monotonic()
                    self._error = self._error_at = None
                self._loading = False
                self._loaded.notify_all()

    def _load_quietly(self) -> None:
        """A background load has nobody to raise to: log, and show the error on the page."""
        try:
            self._load()
        except StoreError as exc:
            if not self._source.closed:  # closing the app ends a load on purpose
                log.warning("fleet snapshot reload failed: %s", exc)
        except Exception:
            log.exception("fleet snapshot reload failed")
