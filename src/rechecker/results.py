"""What probes return: one classified result per probe kind, never an exception.

Kept apart from the probes themselves so that the store and the API can read results
without importing network code.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


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
