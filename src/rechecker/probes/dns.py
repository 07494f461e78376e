"""The DNS probe: resolve A and AAAA through the configured nameservers and classify the outcome.

Queries go straight to the nameservers (``dns.asyncquery``) rather than through a stub
resolver so that the probe sees the real response code (NXDOMAIN vs SERVFAIL vs REFUSED) and
knows which server answered.
"""

from __future__ import annotations

import asyncio
import time

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from rechecker.models import DnsOutcome, DnsResult, Site
from rechecker.probes.context import Nameserver, ProbeContext

_RCODE_OUTCOME = {
    dns.rcode.NXDOMAIN: DnsOutcome.NXDOMAIN,
    dns.rcode.SERVFAIL: DnsOutcome.SERVFAIL,
    dns.rcode.REFUSED: DnsOutcome.REFUSED,
}
# When A and AAAA disagree, the more telling failure is reported.
_SEVERITY = [
    DnsOutcome.NXDOMAIN,
    DnsOutcome.SERVFAIL,
    DnsOutcome.REFUSED,
    DnsOutcome.TIMEOUT,
    DnsOutcome.ERROR,
    DnsOutcome.NOANSWER,
]


async def probe(site: Site, ctx: ProbeContext) -> DnsResult:
    return await resolve_addresses(site.domain, ctx)


async def resolve_addresses(domain: str, ctx: ProbeContext) -> DnsResult:
    """A and AAAA for ``domain``; never raises for a network outcome."""
    started = time.perf_counter()
    nameservers = ctx.settings.nameservers
    if not nameservers:
        return DnsResult(outcome=DnsOutcome.ERROR, message="no DNS resolver configured")
    try:
        name = dns.name.from_text(domain)
    except dns.exception.DNSException as exc:
        return DnsResult(outcome=DnsOutcome.ERROR, message=f"invalid name: {exc}")
    results = await asyncio.gather(
        _lookup(name, dns.rdatatype.A, nameservers, ctx.settings.dns_timeout),
        _lookup(name, dns.rdatatype.AAAA, nameservers, ctx.settings.dns_timeout),
    )
    latency_ms = (time.perf_counter() - started) * 1000
    addresses = [address for result in results for address in result.addresses]
    resolver = next((r.resolver for r in results if r.resolver), None)
    if addresses:
        return DnsResult(
            outcome=DnsOutcome.OK, addresses=addresses, resolver=resolver, latency_ms=latency_ms
        )
    worst = min(results, key=lambda r: _SEVERITY.index(r.outcome))
    update: dict[str, object] = {"latency_ms": latency_ms}
    if worst.outcome is DnsOutcome.NOANSWER:
        update["message"] = "no A or AAAA record"
    return worst.model_copy(update=update)


async def _lookup(
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    nameservers: list[Nameserver],
    budget_s: float,
) -> DnsResult:
    """Ask each nameserver in turn until one gives an answer (of any rcode)."""
    per_server = budget_s / len(nameservers)
    last = DnsResult(outcome=DnsOutcome.ERROR, message="no nameserver tried")
    for server in nameservers:
        query = dns.message.make_query(name, rdtype)
        try:
            response, _ = await dns.asyncquery.udp_with_fallback(
                query, server.host, timeout=per_server, port=server.port
            )
        except dns.exception.Timeout:
            last = DnsResult(
                outcome=DnsOutcome.TIMEOUT,
                resolver=str(server),
                message=f"no answer from {server} within {per_server:.1f}s",
            )
            continue
        except (dns.exception.DNSException, OSError, EOFError, ValueError) as exc:
            last = DnsResult(
                outcome=DnsOutcome.ERROR,
                resolver=str(server),
                message=f"bad response from {server}: {type(exc).__name__}: {exc}"[:300],
            )
            continue
        return _classify(response, rdtype, server)
    return last


def _classify(
    response: dns.message.Message, rdtype: dns.rdatatype.RdataType, server: Nameserver
) -> DnsResult:
    rcode = response.rcode()
    if rcode in _RCODE_OUTCOME:
        outcome = _RCODE_OUTCOME[rcode]
        return DnsResult(outcome=outcome, resolver=str(server), message=f"{outcome} from {server}")
    if rcode != dns.rcode.NOERROR:
        text = dns.rcode.to_text(rcode)
        return DnsResult(
            outcome=DnsOutcome.ERROR, resolver=str(server), message=f"{text} from {server}"
        )
    addresses = [
        rdata.to_text() for rrset in response.answer if rrset.rdtype == rdtype for rdata in rrset
    ]
    if not addresses:
        return DnsResult(
            outcome=DnsOutcome.NOANSWER,
            resolver=str(server),
            message=f"no {dns.rdatatype.to_text(rdtype)} record",
        )
    return DnsResult(outcome=DnsOutcome.OK, addresses=addresses, resolver=str(server))
