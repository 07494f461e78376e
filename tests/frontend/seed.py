"""A small fleet with every state and detail the dashboard shows, written to a real store.

Times are relative to the moment of seeding, so the uptime windows (24 h, 7 d, 30 d) and the
charts have data in them. The store is written on a blocking portal of its own (not
``asyncio.run``), which leaves the main thread's event loop alone for async tests elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from anyio.from_thread import start_blocking_portal

from rechecker.models import (
    CheckResult,
    DnsOutcome,
    DnsResult,
    HttpOutcome,
    HttpResult,
    Incident,
    Site,
    State,
    utcnow,
)
from rechecker.results import DnsRecord, HttpTimings, ResolverAnswer, TlsFailure, TlsInfo
from rechecker.store import Store, create_store

RLM = "\u200f"
RLO = "\u202e"
LONG = "x" * 5000
HOSTILE_MESSAGE = f"<script>alert(1)</script>\"' {RLM}boom {LONG}"
#: Not a valid domain: it can only reach the store by a bug or a hand-edited table, and must
#: still render as text.
HOSTILE_DOMAIN = f"<img src=x onerror=alert(2)>\"'{RLO}moc.example"

DOWN = ["legacy.example.com", "mail.example.org", "shop.example.com", "xss.example"]
DEGRADED = ["cdn.example.net"]
UP = [
    "api.example.com",
    "docs.example.com",
    "status.example.io",
    "www.example.com",
    "xn--bcher-kva.example",
    HOSTILE_DOMAIN,
]
PENDING = ["new.example.dev"]
#: Failing first (DOWN, then DEGRADED, then UP), each by domain; then not yet checked.
ORDER = sorted(DOWN) + sorted(DEGRADED) + sorted(UP) + sorted(PENDING)
#: The domain with 30 days of history behind its charts.
RICH = "api.example.com"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def run_on_store(url: str, work: Callable[[Store], Awaitable[None]]) -> None:
    """Open the store at ``url``, do ``work`` with it, close it."""

    async def run() -> None:
        store = create_store(url)
        await store.open()
        try:
            await work(store)
        finally:
            await store.close()

    with start_blocking_portal() as portal:
        portal.call(run)


def _dns(domain: str, *, resolvers: bool = False) -> DnsResult:
    answers = ["192.0.2.10", "2001:db8::10"]
    return DnsResult(
        outcome=DnsOutcome.OK,
        addresses=answers,
        records={
            "A": [DnsRecord(value="192.0.2.10", ttl=300)],
            "AAAA": [DnsRecord(value="2001:db8::10", ttl=300)],
            "CNAME": [DnsRecord(value=f"edge.{domain}.", ttl=3600)],
        },
        resolver="192.0.2.53:53",
        latency_ms=3.25,
        resolvers=(
            [
                ResolverAnswer(resolver="192.0.2.53:53", outcome=DnsOutcome.OK, addresses=answers),
                ResolverAnswer(
                    resolver="198.51.100.53:53", outcome=DnsOutcome.OK, addresses=answers
                ),
            ]
            if resolvers
            else []
        ),
    )


def _tls(domain: str, now: datetime, days_left: int, *, verified: bool = True) -> TlsInfo:
    return TlsInfo(
        host=domain,
        verified=verified,
        failure=None if verified else TlsFailure.EXPIRED,
        error="" if verified else "certificate has expired",
        version="TLSv1.3",
        subject=f"CN={domain}",
        issuer="CN=Example Issuing CA R3, O=Example Trust",
        san=[domain, f"www.{domain}"],
        not_before=now - timedelta(days=60),
        not_after=now + timedelta(days=days_left),
        days_left=days_left,
        self_signed=False,
        hostname_match=True,
    )


def _latency(domain: str, at: datetime) -> float:
    """A daily wave with a little deterministic noise, and a spike now and then."""
    hours = at.timestamp() / 3600
    wave = 80 + 35 * math.sin(2 * math.pi * hours / 24) + 12 * math.sin(hours * 7.3)
    spike = 240 if int(hours * 3) % 97 == len(domain) else 0
    return round(wave + spike + len(domain), 1)


def up_result(
    domain: str, at: datetime, *, now: datetime, state: State = State.UP, rich: bool = False
) -> CheckResult:
    latency = _latency(domain, at)
    warnings = ["certificate expires in 9 days"] if state is State.DEGRADED else []
    return CheckResult(
        domain=domain,
        url=f"https://{domain}/",
        timestamp=at,
        state=state,
        verdict=state,
        status_code=200,
        error_class="tls_expiring" if state is State.DEGRADED else "",
        error_message="certificate expires in 9 days" if state is State.DEGRADED else "",
        latency_ms=latency,
        dns=_dns(domain, resolvers=rich),
        http=HttpResult(
            url=f"https://{domain}/",
            outcome=HttpOutcome.OK,
            status_code=200,
            reason="OK",
            final_url=f"https://www.{domain}/home",
            latency_ms=latency,
            http_version="HTTP/1.1",
            redirects=1,
            body_bytes=18_422,
            timings=HttpTimings(
                dns_ms=0.0,
                connect_ms=round(latency * 0.18, 1),
                tls_ms=round(latency * 0.27, 1),
                first_byte_ms=round(latency * 0.45, 1),
                body_ms=round(latency * 0.1, 1),
                total_ms=latency,
            ),
            tls=_tls(domain, now, 9 if state is State.DEGRADED else 61),
            warnings=warnings,
        ),
    )


def down_result(domain: str, at: datetime, *, now: datetime) -> CheckResult:
    """Each failing domain fails its own way: DNS, TLS, timeout, or a hostile message."""
    base = {"domain": domain, "url": f"https://{domain}/", "timestamp": at}
    if domain == "mail.example.org":
        return CheckResult(
            **base,
            state=State.DOWN,
            verdict=State.DOWN,
            error_class="dns_nxdomain",
            error_message="NXDOMAIN: mail.example.org does not exist (from 192.0.2.53)",
            dns=DnsResult(outcome=DnsOutcome.NXDOMAIN, message="NXDOMAIN from 192.0.2.53"),
        )
    if domain == "legacy.example.com":
        message = "certificate has expired (not after 12 days ago)"
        return CheckResult(
            **base,
            state=State.DOWN,
            verdict=State.DOWN,
            error_class="http_tls",
            error_message=message,
            latency_ms=41.0,
            dns=_dns(domain),
            http=HttpResult(
                url=f"https://{domain}/",
                outcome=HttpOutcome.TLS,
                message=message,
                latency_ms=41.0,
                tls=_tls(domain, now, -12, verified=False),
            ),
        )
    message = HOSTILE_MESSAGE if domain == "xss.example" else "timed out after 10.0 s"
    http_class = "http_http_status" if domain == "xss.example" else "http_timeout"
    return CheckResult(
        **base,
        state=State.DOWN,
        verdict=State.DOWN,
        status_code=500 if domain == "xss.example" else None,
        error_class=http_class,
        error_message=message,
        latency_ms=12.0 if domain == "xss.example" else None,
        dns=_dns(domain),
        http=HttpResult(
            url=f"https://{domain}/",
            outcome=HttpOutcome.HTTP_STATUS if domain == "xss.example" else HttpOutcome.TIMEOUT,
            status_code=500 if domain == "xss.example" else None,
            reason="Internal Server Error" if domain == "xss.example" else "",
            message=message,
        ),
    )


def _times(now: datetime, span: timedelta, step: timedelta) -> Iterator[datetime]:
    at = now - span
    while at <= now:
        yield at
        at += step


def seed_fleet(url: str, now: datetime | None = None) -> datetime:
    """Write the fleet to the store at ``url``; returns the "now" it was seeded for."""
    now = now or utcnow()
    results: list[CheckResult] = []
    incidents: list[Incident] = []

    # 30 days of api.example.com, every 20 minutes, with a 3-hour outage 4 days ago.
    outage = (now - timedelta(days=4, hours=3), now - timedelta(days=4))
    for at in _times(now, timedelta(days=30), timedelta(minutes=20)):
        if outage[0] <= at < outage[1]:
            results.append(
                down_result("shop.example.com", at, now=now).model_copy(
                    update={"domain": RICH, "url": f"https://{RICH}/"}
                )
            )
        else:
            results.append(up_result(RICH, at, now=now, rich=True))
    incidents.append(
        Incident(
            id="inc-api-1",
            domain=RICH,
            started_at=outage[0],
            ended_at=outage[1],
            cause="http_timeout",
            message="timed out after 10.0 s",
        )
    )
    for domain in sorted(UP):
        if domain != RICH:
            results.extend(
                up_result(domain, at, now=now)
                for at in _times(now, timedelta(days=2), timedelta(hours=1))
            )
    for domain in DEGRADED:
        results.extend(
            up_result(domain, at, now=now, state=State.DEGRADED)
            for at in _times(now, timedelta(hours=20), timedelta(minutes=30))
        )
    down_since = {
        "shop.example.com": now - timedelta(hours=2, minutes=14),
        "mail.example.org": now - timedelta(days=3, hours=5),
        "legacy.example.com": now - timedelta(days=12),
        "xss.example": now - timedelta(minutes=47),
    }
    for domain, since in down_since.items():
        before = since - timedelta(days=1)
        results.extend(
            up_result(domain, at, now=now)
            for at in _times(before, timedelta(days=1), timedelta(hours=2))
        )
        results.extend(
            down_result(domain, at, now=now)
            for at in _times(now, now - since, timedelta(minutes=30))
        )
        incidents.append(
            Incident(
                id=f"inc-{domain}",
                domain=domain,
                started_at=since,
                cause=down_result(domain, since, now=now).error_class,
                message=down_result(domain, since, now=now).error_message[:1000],
            )
        )
    incidents.append(
        Incident(
            id="inc-www-1",
            domain="www.example.com",
            started_at=now - timedelta(hours=30),
            ended_at=now - timedelta(hours=29, minutes=38),
            cause="http_refused",
            message="connection refused by 192.0.2.10:443",
        )
    )

    results.sort(key=lambda r: r.timestamp)
    latest: dict[str, CheckResult] = {r.domain: r for r in results}
    for domain, result in latest.items():
        down_at = down_since.get(domain)
        latest[domain] = result.model_copy(
            update={
                "state_since": down_at or now - timedelta(days=9, hours=domain.count("e")),
                "consecutive_failures": 5 if down_at else 0,
                "consecutive_successes": 0 if down_at else 40,
                "incident_id": f"inc-{domain}" if down_at else None,
            }
        )
    history = [r for r in results if latest[r.domain].timestamp != r.timestamp]

    async def write(store: Store) -> None:
        await store.add_sites(
            [
                Site(
                    domain=d,
                    url=f"https://{d}/",
                    added_at=now - (timedelta(minutes=3) if d in PENDING else timedelta(days=40)),
                )
                for d in ORDER
            ]
        )
        await store.record_results(history)
        await store.record_results(list(latest.values()))
        await store.save_incidents(incidents)

    run_on_store(url, write)
    return now


def record(url: str, results: list[CheckResult]) -> None:
    """Record new results, as the core would: what the refresh test changes under the page."""

    async def write(store: Store) -> None:
        await store.record_results(results)

    run_on_store(url, write)
