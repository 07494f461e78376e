"""What the dashboard shows, worked out apart from Flask so the HTML page and the JSON API
cannot disagree on order, counts or search.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass

import idna

from rechecker.models import CheckResult, Site, State

#: Longer than any domain can be; a longer query can only match nothing, so cut it short
#: rather than echo kilobytes back into the page.
MAX_QUERY_LENGTH = 253


@dataclass(frozen=True, slots=True)
class Counts:
    """Fleet-wide totals; they ignore the search so the header never hides an outage."""

    sites: int
    up: int
    down: int
    pending: int

    def as_dict(self) -> dict[str, int]:
        return {"sites": self.sites, "up": self.up, "down": self.down, "pending": self.pending}


@dataclass(frozen=True, slots=True)
class Overview:
    counts: Counts
    results: list[CheckResult]
    """Checked domains matching the query: DOWN first, then UP, each by domain."""
    pending: list[Site]
    """Monitored sites matching the query that have no result yet, by domain."""
    query: str


def clean_query(raw: str | None) -> str:
    return (raw or "").strip()[:MAX_QUERY_LENGTH]


def _unicode_form(domain: str) -> str | None:
    """The readable form of a punycode name, so ``bücher`` finds ``xn--bcher-kva.de``."""
    if "xn--" not in domain:
        return None
    try:
        return idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return None


def domain_matcher(query: str) -> Callable[[str], bool]:
    """A case-insensitive substring test on domains; an empty query matches everything."""
    needle = query.strip().lower()
    if not needle:
        return lambda _domain: True
    needles = {needle}
    if not needle.isascii():
        # Not a valid name (a fragment like "ü-"): the plain substring test still applies.
        with suppress(idna.IDNAError, UnicodeError):
            needles.add(idna.encode(needle, uts46=True).decode("ascii"))

    def matches(domain: str) -> bool:
        name = domain.lower()
        if any(n in name for n in needles):
            return True
        readable = _unicode_form(name)
        return readable is not None and needle in readable

    return matches


def failing_first(results: Iterable[CheckResult]) -> list[CheckResult]:
    return sorted(results, key=lambda r: (r.state is not State.DOWN, r.domain))


def build_overview(sites: list[Site], statuses: list[CheckResult], query: str = "") -> Overview:
    checked = {result.domain for result in statuses}
    unchecked = [site for site in sites if site.domain not in checked]
    counts = Counts(
        sites=len(sites),
        up=sum(result.state is State.UP for result in statuses),
        down=sum(result.state is State.DOWN for result in statuses),
        pending=len(unchecked),
    )
    matches = domain_matcher(query)
    return Overview(
        counts=counts,
        results=failing_first(r for r in statuses if matches(r.domain)),
        pending=sorted((s for s in unchecked if matches(s.domain)), key=lambda s: s.domain),
        query=query,
    )
