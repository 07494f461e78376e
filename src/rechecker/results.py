"""What probes return: one classified result per probe kind, never an exception.

Kept apart from the probes themselves so that the store and the API can read results
without importing network code.

``ok`` means "not a failure". A result can be ok and still carry ``warnings``: findings that
do not make the site unreachable but should make it DEGRADED (resolvers that disagree, a
certificate about to expire, a slow answer).
"""

from __future__ import annotations

from datetime import datetime
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
    #: The name resolved, but not to the expected addresses or CNAME target.
    MISMATCH = "MISMATCH"


class HttpOutcome(StrEnum):
    OK = "OK"
    HTTP_STATUS = "HTTP_STATUS"
    #: The status was accepted but the body lacks the expected text or pattern.
    BODY_MISMATCH = "BODY_MISMATCH"
    REFUSED = "REFUSED"
    RESET = "RESET"
    TIMEOUT = "TIMEOUT"
    TLS = "TLS"
    TOO_MANY_REDIRECTS = "TOO_MANY_REDIRECTS"
    UNRESOLVED = "UNRESOLVED"
    ERROR = "ERROR"


class TlsFailure(StrEnum):
    """Why a TLS connection was refused, as precisely as the certificate tells."""

    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    SELF_SIGNED = "SELF_SIGNED"
    UNTRUSTED = "UNTRUSTED"
    HOSTNAME_MISMATCH = "HOSTNAME_MISMATCH"
    REVOKED = "REVOKED"
    #: No certificate question: the handshake itself failed (protocol, cipher, plain HTTP).
    HANDSHAKE = "HANDSHAKE"


class DnsRecord(BaseModel):
    """One resource record of an answer, in zone-file presentation format."""

    value: str
    ttl: int


class ResolverAnswer(BaseModel):
    """What one resolver said, kept when several resolvers are compared."""

    resolver: str
    outcome: DnsOutcome
    addresses: list[str] = Field(default_factory=list)
    message: str = ""


class DnsResult(BaseModel):
    """What the DNS probe saw for one name.

    ``addresses`` are the A then AAAA answers (what the HTTP probe connects to); ``records``
    holds every queried type's records with their TTLs, plus the CNAME chain the address
    answers went through.
    """

    outcome: DnsOutcome
    addresses: list[str] = Field(default_factory=list)
    records: dict[str, list[DnsRecord]] = Field(default_factory=dict)
    resolver: str | None = None
    latency_ms: float = 0.0
    message: str = ""
    warnings: list[str] = Field(default_factory=list)
    resolvers: list[ResolverAnswer] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome is DnsOutcome.OK


class TlsInfo(BaseModel):
    """The server certificate of an HTTPS check and whether it was trusted.

    On a verification failure the details come from a second, unverified handshake made
    only to say why (expired since when, issued for which names).
    """

    host: str
    verified: bool
    failure: TlsFailure | None = None
    error: str = ""
    version: str | None = None
    subject: str = ""
    issuer: str = ""
    san: list[str] = Field(default_factory=list)
    not_before: datetime | None = None
    not_after: datetime | None = None
    days_left: int | None = None
    self_signed: bool | None = None
    hostname_match: bool | None = None


class HttpTimings(BaseModel):
    """Milliseconds spent in each phase, summed over redirects; ``total_ms`` is the request."""

    dns_ms: float = 0.0
    connect_ms: float = 0.0
    tls_ms: float = 0.0
    first_byte_ms: float = 0.0
    body_ms: float = 0.0
    total_ms: float = 0.0


class HttpResult(BaseModel):
    """What the HTTP probe saw for one URL."""

    url: str
    outcome: HttpOutcome
    status_code: int | None = None
    reason: str = ""
    final_url: str | None = None
    latency_ms: float = 0.0
    message: str = ""
    http_version: str | None = None
    redirects: int = 0
    body_bytes: int = 0
    timings: HttpTimings = Field(default_factory=HttpTimings)
    tls: TlsInfo | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome is HttpOutcome.OK
