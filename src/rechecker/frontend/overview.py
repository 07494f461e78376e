"""What the overview shows for a query string, worked out apart from Flask so the HTML page
and its JSON twin cannot disagree on filters, order, counts or paging.

Everything comes from the query string and nothing else, so any view can be shared as a link;
values that make no sense fall back to the defaults instead of failing the page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any

import idna

from rechecker.frontend.fleet import PENDING, Fleet, Row

#: Longer than any domain can be; a longer query can only match nothing, so cut it short
#: rather than echo kilobytes back into the page.
MAX_QUERY_LENGTH = 253
PAGE_SIZES = (25, 50, 100, 250, 500, 1000)
DEFAULT_PAGE_SIZE = 100
#: Sorts and the direction each starts in: failing first; the latest change of state first
#: ("what just happened?"); the slowest first.
SORTS = {"state": False, "domain": False, "since": True, "latency": True}
#: The state filter's choices: a state, or "failing" for DOWN and DEGRADED together.
SORT_LABELS = {
    ("state", False): "failing first",
    ("state", True): "healthy first",
    ("domain", False): "by name, A to Z",
    ("domain", True): "by name, Z to A",
    ("since", True): "latest change of state first",
    ("since", False): "longest in their state first",
    ("latency", True): "slowest first",
    ("latency", False): "fastest first",
}
STATE_FILTERS: dict[str, frozenset[str]] = {
    "failing": frozenset({"DOWN", "DEGRADED"}),
    "DOWN": frozenset({"DOWN"}),
    "DEGRADED": frozenset({"DEGRADED"}),
    "UP": frozenset({"UP"}),
    PENDING: frozenset({PENDING}),
}


def clean_query(raw: str | None) -> str:
    return (raw or "").strip()[:MAX_QUERY_LENGTH]


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw or "")
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class Filters:
    """One view of the overview, as read from (and written back to) the query string."""

    q: str = ""
    state: str = ""
    error_class: str = ""
    sort: str = "state"
    descending: bool = False
    page: int = 1
    size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Filters:
        state = (args.get("state") or "").strip()
        state = next((s for s in STATE_FILTERS if s.lower() == state.lower()), "")
        sort = args.get("sort") or "state"
        if sort not in SORTS:
            sort = "state"
        direction = args.get("dir")
        size = _int(args.get("size"), DEFAULT_PAGE_SIZE)
        return cls(
            q=clean_query(args.get("q")),
            state=state,
            error_class=(args.get("error_class") or "").strip()[:64],
            sort=sort,
            descending=SORTS[sort] if direction not in ("asc", "desc") else direction == "desc",
            page=max(1, _int(args.get("page"), 1)),
            size=size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE,
        )

    @property
    def direction(self) -> str:
        return "desc" if self.descending else "asc"

    @property
    def sort_label(self) -> str:
        return SORT_LABELS[(self.sort, self.descending)]

    @property
    def narrowed(self) -> bool:
        """Whether the table hides some of the fleet."""
        return bool(self.q or self.state or self.error_class)

    def args(self, **changes: Any) -> dict[str, str | int]:
        """The query string of this view with ``changes``, defaults left out to keep links short."""
        view = replace(self, **changes)
        args: dict[str, str | int] = {}
        if view.q:
            args["q"] = view.q
        if view.state:
            args["state"] = view.state
        if view.error_class:
            args["error_class"] = view.error_class
        if view.sort != "state" or view.descending:
            args["sort"] = view.sort
            args["dir"] = view.direction
        if view.size != DEFAULT_PAGE_SIZE:
            args["size"] = view.size
        if view.page != 1:
            args["page"] = view.page
        return args

    def sorted_by(self, sort: str) -> dict[str, str | int]:
        """The link of a column header: sort by it, or flip the direction if it is the sort."""
        descending = not self.descending if sort == self.sort else SORTS[sort]
        return self.args(sort=sort, descending=descending, page=1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "q": self.q,
            "state": self.state,
            "error_class": self.error_class,
            "sort": self.sort,
            "dir": self.direction,
            "page": self.page,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def first(self) -> int:
        """1-based position of the first row shown (0 when nothing matches)."""
        return min(self.total, (self.number - 1) * self.size + 1)

    @property
    def last(self) -> int:
        return min(self.total, self.number * self.size)

    def as_dict(self) -> dict[str, int]:
        return {
            "number": self.number,
            "size": self.size,
            "total": self.total,
            "pages": self.pages,
            "first": self.first,
            "last": self.last,
        }


@dataclass(frozen=True, slots=True)
class Overview:
    fleet: Fleet
    filters: Filters
    rows: list[Row]
    page: Page


def search_terms(query: str) -> list[tuple[str, ...]]:
    """Each word of the query with its punycode spelling: every word must match a domain."""
    terms: list[tuple[str, ...]] = []
    for word in query.lower().split():
        spellings = [word]
        if not word.isascii():
            # Not a valid name (a fragment like "ü-"): the plain substring test still applies.
            with suppress(idna.IDNAError, UnicodeError):
                spellings.append(idna.encode(word, uts46=True).decode("ascii"))
        terms.append(tuple(spellings))
    return terms


def filter_rows(rows: list[Row], filters: Filters) -> list[Row]:
    """The rows the filters keep, in their order: ``rows`` itself when nothing is filtered.

    One list comprehension per condition, the most selective (state, class) first: at
    100,000 rows a comprehension costs milliseconds where a predicate called per row costs
    a hundred, so conditions are not combined into one function.
    """
    states = STATE_FILTERS.get(filters.state)
    if states is not None:
        rows = [row for row in rows if row.state in states]
    if filters.error_class:
        error_class = filters.error_class
        rows = [row for row in rows if row.error_class == error_class]
    for spellings in search_terms(filters.q):
        if len(spellings) == 1:
            [needle] = spellings
            rows = [row for row in rows if needle in row.search]
        else:
            rows = [row for row in rows if any(s in row.search for s in spellings)]
    return rows


def build_overview(fleet: Fleet, filters: Filters) -> Overview:
    """Sort (a cached order), filter and cut one page out of the fleet."""
    matching = filter_rows(fleet.ordered(filters.sort, filters.descending), filters)
    pages = max(1, math.ceil(len(matching) / filters.size))
    number = min(filters.page, pages)
    start = (number - 1) * filters.size
    return Overview(
        fleet=fleet,
        filters=replace(filters, page=number),
        rows=matching[start : start + filters.size],
        page=Page(number=number, size=filters.size, total=len(matching)),
    )
