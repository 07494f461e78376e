"""The records Rechecker keeps and serves: sites, probe results, check results."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from rechecker.results import DnsOutcome, DnsResult, HttpOutcome, HttpResult


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC; computed per call, never at import."""
    return datetime.now(UTC)


class Site(BaseModel):
    """A monitored site: one row of the store's ``sites``."""

    domain: str
    url: str
    inventory_id: str | None = None
    added_at: datetime = Field(default_factory=utcnow)


class State(StrEnum):
    """A domain's state; also the verdict of a single check before thresholds apply."""

    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"


class CheckResult(BaseModel):
    """One full check of one domain, as kept in ``status`` (latest) and ``history``.

    ``domain``, ``timestamp``, ``status_code`` and ``error_message`` keep the original
    Rechecker's meaning: an empty ``error_message`` means healthy.
    """

    domain: str
    url: str
    timestamp: datetime = Field(default_factory=utcnow)
    state: State
    #: What this check alone said; ``state`` is the domain's state once thresholds apply.
    verdict: State | None = None
    status_code: int | None = None
    error_class: str = ""
    error_message: str = ""
    latency_ms: float | None = None
    dns: DnsResult
    http: HttpResult | None = None
    #: When the domain entered ``state``; with the counters, what thresholds need.
    state_since: datetime | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    incident_id: str | None = None

    @property
    def ok(self) -> bool:
        """Not DOWN: a degraded domain still serves."""
        return self.state is not State.DOWN


class Incident(BaseModel):
    """A period during which a domain was DOWN, from the check that made it DOWN to recovery."""

    id: str
    domain: str
    started_at: datetime
    ended_at: datetime | None = None
    cause: str = ""
    message: str = ""

    @property
    def open(self) -> bool:
        return self.ended_at is None

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class HistoryPoint(BaseModel):
    """One check, reduced to what uptime and latency summaries and charts need."""

    timestamp: datetime
    verdict: State
    latency_ms: float | None = None


__all__ = [
    "CheckResult",
    "DnsOutcome",
    "DnsResult",
    "HistoryPoint",
    "HttpOutcome",
    "HttpResult",
    "Incident",
    "Site",
    "State",
    "utcnow",
]
