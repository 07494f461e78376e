"""The DNS probe: resolve a name through the configured nameservers and classify the outcome.

Queries go straight to the nameservers (:mod:`rechecker.probes.dns_transport`) rather than
through a stub resolver so that the probe sees the real response code (NXDOMAIN vs SERVFAIL
vs REFUSED), the TTLs, and which server answered.

A and AAAA are always asked (the HTTP probe connects to them); other record types only when
configured. With several resolvers chosen on purpose, every one is asked at once and a
domain they disagree on gets a warning: split-horizon mistakes, stale secondaries and
half-done migrations show up while the domain still works.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass

import dns.rcode
import dns.rdatatype

from rechecker.models import DnsOutcome, DnsResult, Site
from rechecker.probes.context import Nameserver, ProbeContext
from rechecker.probes.dns_transport import (
    AAAA,
    CNAME,
    A,
    Answer,
    DnsTransport,
    DnsTransportError,
    encode_name,
)
from rechecker.probes.options import ADDRESS_TYPES, IPAddress, ProbeOptions
from rechecker.results import DnsRecord, ResolverAnswer

_RCODE_OUTCOME: dict[int, DnsOutcome] = {
    dns.rcode.NXDOMAIN: DnsOutcome.NXDOMAIN,
    dns.rcode.SERVFAIL: DnsOutcome.SERVFAIL,
    dns.rcode.REFUSED: DnsOutcome.REFUSED,
}
# When A and AAAA (or resolvers) disagree, the more telling failure is reported.
_SEVERITY = [
    DnsOutcome.NXDOMAIN,
    DnsOutcome.SERVFAIL,
    DnsOutcome.REFUSED,
    DnsOutcome.TIMEOUT,
    DnsOutcome.ERROR,
    DnsOutcome.NOANSWER,
]
# A resolver that did not answer has no opinion: it is not counted as disagreeing.
_NO_ANSWER = (DnsOutcome.TIMEOUT, DnsOutcome.ERROR)


async def probe(site: Site, ctx: ProbeContext) -> DnsResult:
    """Resolve ``site.domain`` as its options say, compare resolvers when configured, check
    the expectations; never raises for a network outcome."""
    options = ctx.options_for(site.domain)
    started = time.perf_counter()
    servers = ctx.settings.nameservers
    groups = [[server] for server in servers] if ctx.settings.compare_resolvers else [servers]
    answers = await _ask_groups(site.domain, options.record_types, groups, ctx)
    result = _primary(answers)
    if len(answers) > 1:
        result = _compare(result, answers, servers)
    if result.ok:
        result = _check_expectations(result, options)
    # Every result above is this check's own: set the field rather than copy the model.
    result.latency_ms = (time.perf_counter() - started) * 1000
    return result


async def resolve_addresses(domain: str, ctx: ProbeContext) -> DnsResult:
    """A and AAAA for ``domain`` through the nameservers in turn (redirect targets, TLS
    diagnosis); never raises for a network outcome."""
    started = time.perf_counter()
    (answer,) = await _ask_groups(domain, ADDRESS_TYPES, [ctx.settings.nameservers], ctx)
    answer.latency_ms = (time.perf_counter() - started) * 1000
    return answer


async def _ask_groups(
    domain: str, record_types: tuple[str, ...], groups: list[list[Nameserver]], ctx: ProbeContext
) -> list[DnsResult]:
    """One answer per group of nameservers (a group's servers are fallbacks of each other)."""
    if not ctx.settings.nameservers:
        return [DnsResult(outcome=DnsOutcome.ERROR, message="no DNS resolver configured")]
    try:
        qname = encode_name(domain)
    except DnsTransportError as exc:
        return [DnsResult(outcome=DnsOutcome.ERROR, message=str(exc))]
    rdtypes = _rdtypes(record_types)
    budget_s = ctx.settings.dns_timeout
    if len(groups) == 1:
        return [await _ask(qname, rdtypes, groups[0], budget_s, ctx.dns_transport)]
    return list(
        await asyncio.gather(
            *(_ask(qname, rdtypes, group, budget_s, ctx.dns_transport) for group in groups)
        )
    )


@functools.cache
def _rdtypes(record_types: tuple[str, ...]) -> tuple[dns.rdatatype.RdataType, ...]:
    return tuple(dns.rdatatype.from_text(t) for t in record_types)


@dataclass(slots=True)
class _Reply:
    """One query's fate: an outcome and, when a server answered, its answer section."""

    outcome: DnsOutcome
    resolver: str
    message: str = ""
    records: dict[int, list[DnsRecord]] | None = None
    #: The server answered (any rcode): the next server is not asked.
    final: bool = True


async def _ask(
    qname: bytes,
    rdtypes: tuple[dns.rdatatype.RdataType, ...],
    servers: list[Nameserver],
    budget_s: float,
    transport: DnsTransport,
) -> DnsResult:
    """Every record type of ``name`` from one group of servers, as one result."""
    replies = await _lookup(qname, rdtypes, servers, budget_s, transport)
    records: dict[str, list[DnsRecord]] = {}
    warnings = []
    for rdtype, reply in zip(rdtypes, replies, strict=True):
        text = dns.rdatatype.to_text(rdtype)
        if reply.records is not None:
            records[text] = reply.records.get(rdtype, [])
            if rdtype in (A, AAAA):
                _add_cname_chain(records, reply.records.get(CNAME, []))
        elif text not in ADDRESS_TYPES:
            warnings.append(f"{text} lookup failed: {reply.message or reply.outcome}")
    address_replies = replies[:2]  # record types always begin with A and AAAA
    addresses = [r.value for t in ADDRESS_TYPES for r in records.get(t, [])]
    resolver = next((r.resolver for r in address_replies if r.records is not None), None)
    if addresses:
        return DnsResult(
            outcome=DnsOutcome.OK,
            addresses=addresses,
            records=records,
            resolver=resolver,
            warnings=warnings,
        )
    worst = min(address_replies, key=lambda r: _SEVERITY.index(r.outcome))
    message = "no A or AAAA record" if worst.outcome is DnsOutcome.NOANSWER else worst.message
    return DnsResult(
        outcome=worst.outcome, records=records, resolver=resolver or worst.resolver, message=message
    )


async def _lookup(
    qname: bytes,
    rdtypes: tuple[dns.rdatatype.RdataType, ...],
    nameservers: list[Nameserver],
    budget_s: float,
    transport: DnsTransport,
) -> list[_Reply]:
    """Per record type, ask each nameserver in turn until one gives an answer (of any
    rcode); the types still unanswered go to the next server together."""
    per_server = budget_s / len(nameservers)
    replies = [_Reply(DnsOutcome.ERROR, "", "no nameserver tried", final=False) for _ in rdtypes]
    todo = list(range(len(rdtypes)))
    for server in nameservers:
        answers = await transport.ask(
            server.host, server.port, qname, [rdtypes[i] for i in todo], per_server
        )
        for i, answer in zip(todo, answers, strict=True):
            replies[i] = (
                _classify(answer, rdtypes[i], server)
                if isinstance(answer, Answer)
                else _failure(answer, server, per_server)
            )
        todo = [i for i in todo if not replies[i].final]
        if not todo:
            break
    return replies


def _failure(exc: Exception, server: Nameserver, per_server: float) -> _Reply:
    if isinstance(exc, TimeoutError):
        return _Reply(
            DnsOutcome.TIMEOUT,
            str(server),
            f"no answer from {server} within {per_server:.1f}s",
            final=False,
        )
    return _Reply(
        DnsOutcome.ERROR,
        str(server),
        f"bad response from {server}: {type(exc).__name__}: {exc}"[:300],
        final=False,
    )


def _classify(answer: Answer, rdtype: dns.rdatatype.RdataType, server: Nameserver) -> _Reply:
    rcode = answer.rcode
    if rcode in _RCODE_OUTCOME:
        outcome = _RCODE_OUTCOME[rcode]
        return _Reply(outcome, str(server), f"{outcome} from {server}")
    if rcode != dns.rcode.NOERROR:
        text = dns.rcode.to_text(dns.rcode.Rcode.make(rcode))
        return _Reply(DnsOutcome.ERROR, str(server), f"{text} from {server}")
    if not answer.records.get(rdtype):
        return _Reply(
            DnsOutcome.NOANSWER,
            str(server),
            f"no {dns.rdatatype.to_text(rdtype)} record",
            answer.records,
        )
    return _Reply(DnsOutcome.OK, str(server), records=answer.records)


def _add_cname_chain(records: dict[str, list[DnsRecord]], chain: list[DnsRecord]) -> None:
    """The aliases an address answer went through, each once: free with the A/AAAA query."""
    if chain:
        known = records.setdefault("CNAME", [])
        known.extend(r for r in chain if r not in known)


def _primary(answers: list[DnsResult]) -> DnsResult:
    """The answer the check goes by: the first (in configured order) that resolved, else the
    most telling failure."""
    for answer in answers:
        if answer.ok:
            return answer
    return min(answers, key=lambda a: _SEVERITY.index(a.outcome))


def _compare(result: DnsResult, answers: list[DnsResult], servers: list[Nameserver]) -> DnsResult:
    """Keep what each resolver said and warn when those that answered disagree: a different
    set of addresses, or a different outcome (one NXDOMAIN, another an address)."""
    said = [
        ResolverAnswer(
            resolver=str(server),
            outcome=answer.outcome,
            addresses=answer.addresses,
            message=answer.message,
        )
        for server, answer in zip(servers, answers, strict=True)
    ]
    answered = [a for a in said if a.outcome not in _NO_ANSWER]
    views = {(a.outcome, frozenset(a.addresses)) for a in answered}
    warnings = list(result.warnings)
    if len(views) > 1:
        warnings.append("resolvers disagree: " + "; ".join(_summary(a) for a in answered))
    return result.model_copy(update={"resolvers": said, "warnings": warnings})


def _summary(answer: ResolverAnswer) -> str:
    said = (
        ", ".join(sorted(answer.addresses)) if answer.outcome is DnsOutcome.OK else answer.outcome
    )
    return f"{answer.resolver} answered {said}"


def _check_expectations(result: DnsResult, options: ProbeOptions) -> DnsResult:
    """MISMATCH when the name resolves elsewhere than expected; the answer is kept."""
    problems = []
    if options.expected_addresses is not None:
        families = {address.version for address in options.expected_addresses}
        got = {
            address
            for address in map(ipaddress.ip_address, result.addresses)
            if address.version in families
        }
        if got != options.expected_addresses:
            problems.append(
                f"expected addresses {_addresses(options.expected_addresses)}, "
                f"got {_addresses(got) or 'none'}"
            )
    if options.expected_cname is not None:
        chain = [r.value.rstrip(".").lower() for r in result.records.get("CNAME", [])]
        if options.expected_cname not in chain:
            problems.append(
                f"expected CNAME {options.expected_cname}, got {', '.join(chain) or 'none'}"
            )
    if not problems:
        return result
    return result.model_copy(
        update={"outcome": DnsOutcome.MISMATCH, "message": "; ".join(problems)}
    )


def _addresses(addresses: Iterable[IPAddress]) -> str:
    return ", ".join(str(a) for a in sorted(addresses, key=lambda a: (a.version, int(a))))
