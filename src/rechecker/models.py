"""The records Rechecker keeps and serves: sites, probe results, check results."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC; computed per call, never at import."""
    return datetime.now(UTC)


class Site(BaseModel):
    """A monitored site: one row of the store's ``sites``."""

    domain: str
    url: str
    inventory_id: str | None = None
    added_at: datetime = Field(default_factory=utcnow)


class DnsOutcome(StrEnum):
    OK = "OK"
    NXDOMAIN = "NXDOMAIN"
    NOANSWER = "NOANSWER"
    SERVFAIL = "SERVFAIL"
    REFUSED = "REFUSED"
    TIMEOUT = "TIMEOUT"
    ERROR = "ERROR"


class HttpOutcome(StrEnum):
    OK = "OK"
    HTTP_STATUS = "HTTP_STATUS"
    REFUSED = "REFUSED"
    RESET = "RESET"
    TIMEOUT = "TIMEOUT"
    TLS = "TLS"
    TOO_MANY_REDIRECTS = "TOO_MANY_REDIRECTS"
    UNRESOLVED = "UNRESOLVED"
    ERROR = "ERROR"


class State(StrEnum):
    UP = "UP"
    DOWN = "DOWN"


class DnsResult(BaseModel):
    """What the DNS probe saw for one name (A and AAAA)."""

    outcome: DnsOutcome
    addresses: list[str] = Field(default_factory=list)
    resolver: str | None = None
    latency_ms: float = 0.0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is DnsOutcome.OK


class HttpResult(BaseModel):
    """What the HTTP probe saw for one URL."""

    url: str
    outcome: HttpOutcome
    status_code: int | None = None
    reason: str = ""
    final_url: str | None = None
    latency_ms: float = 0.0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is HttpOutcome.OK


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
