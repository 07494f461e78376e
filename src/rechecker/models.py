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
    UP = "UP"
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
    status_code: int | None = None
    error_class: str = ""
    error_message: str = ""
    latency_ms: float | None = None
    dns: DnsResult
    http: HttpResult | None = None

    @property
    def ok(self) -> bool:
        return self.state is State.UP


__all__ = [
    "CheckResult",
    "DnsOutcome",
    "DnsResult",
    "HttpOutcome",
    "HttpResult",
    "Site",
    "State",
    "utcnow",
]
