"""The DNS probe against real servers on loopback: broken answers, records, expectations and
resolvers that disagree."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rechecker.config import Settings
from rechecker.models import DnsOutcome, Site
from rechecker.probes import PROBES, dns_transport
from rechecker.probes.dns import probe as dns_probe
from rechecker.results import DnsRecord, DnsResult
from tests.support.targets import Targets, probe_context


async def dns_check(settings: Settings, domain: str, **changes: object) -> DnsResult:
    async with probe_context(settings, **changes) as ctx:
        result = await PROBES["dns"](Site(domain=domain, url=f"https://{domain}/"), ctx)
    assert isinstance(result, DnsResult)
    return result


@pytest.mark.parametrize(
    ("domain", "outcome", "message"),
    [
        ("late.test", DnsOutcome.TIMEOUT, "no answer from"),
        ("garbage.test", DnsOutcome.ERROR, "bad response from"),
        ("cut.test", DnsOutcome.ERROR, "bad response from"),
    ],
)
async def test_slow_and_broken_answers_are_classified(
    settings: Settings, domain: str, outcome: DnsOutcome, message: str
) -> None:
    result = await dns_check(settings, domain)
    assert result.outcome is outcome
    assert message in result.message
    assert result.addresses == []


async def test_a_truncated_udp_answer_is_asked_again_over_tcp(settings: Settings) -> None:
    result = await dns_check(settings, "truncated.test")
    assert result.outcome is DnsOutcome.OK
    assert result.addresses == ["127.0.0.1"]


async def test_configured_record_types_come_with_their_ttls(settings: Settings) -> None:
    result = await dns_check(settings, "mail.test", dns_record_types="mx, TXT,NS,CAA")
    assert result.outcome is DnsOutcome.OK
    assert result.records["A"] == [DnsRecord(value="127.0.0.1", ttl=300)]
    assert result.records["AAAA"] == []
    assert {r.value for r in result.records["MX"]} == {"10 mx1.mail.test.", "20 mx2.mail.test."}
    assert result.records["TXT"] == [DnsRecord(value='"v=spf1 -all"', ttl=300)]
    assert result.records["NS"] == [DnsRecord(value="ns1.mail.test.", ttl=300)]
    assert result.records["CAA"] == [DnsRecord(value='0 issue "ca.test"', ttl=300)]
    assert result.warnings == []


async def test_only_addresses_are_asked_by_default(settings: Settings, targets: Targets) -> None:
    before = targets.dns.queries
    result = await dns_check(settings, "mail.test")
    assert set(result.records) == {"A", "AAAA"}
    assert targets.dns.queries - before == 2


async def test_the_cname_chain_of_an_alias_is_recorded(settings: Settings) -> None:
    result = await dns_check(settings, "alias.test")
    assert result.outcome is DnsOutcome.OK
    assert result.addresses == ["127.0.0.1"]
    assert result.records["CNAME"] == [DnsRecord(value="ok.test.", ttl=60)]


def checks_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "checks.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("domain", "table", "outcome", "shown"),
    [
        ("ok.test", 'expected_addresses = ["127.0.0.1"]', DnsOutcome.OK, []),
        (
            "ok.test",
            'expected_addresses = ["192.0.2.1"]',
            DnsOutcome.MISMATCH,
            ["expected addresses 192.0.2.1", "got 127.0.0.1"],
        ),
        # Only the families the expectation names are compared.
        ("ok.test", 'expected_addresses = ["::1"]', DnsOutcome.MISMATCH, ["got none"]),
        ("alias.test", 'expected_cname = "OK.test."', DnsOutcome.OK, []),
        (
            "alias.test",
            'expected_cname = "cdn.test"',
            DnsOutcome.MISMATCH,
            ["expected CNAME cdn.test", "got ok.test"],
        ),
        ("ok.test", 'expected_cname = "cdn.test"', DnsOutcome.MISMATCH, ["got none"]),
    ],
)
async def test_expectations_of_a_site(
    settings: Settings,
    tmp_path: Path,
    domain: str,
    table: str,
    outcome: DnsOutcome,
    shown: list[str],
) -> None:
    path = checks_file(tmp_path, f'["{domain}"]\n{table}\n')
    result = await dns_check(settings, domain, checks_file=path)
    assert result.outcome is outcome, result.message
    assert all(text in result.message for text in shown), result.message
    assert result.addresses == ["127.0.0.1"]


async def test_expectations_apply_only_to_their_domain(settings: Settings, tmp_path: Path) -> None:
    path = checks_file(tmp_path, '["elsewhere.test"]\nexpected_addresses = ["192.0.2.1"]\n')
    result = await dns_check(settings, "ok.test", checks_file=path)
    assert result.outcome is DnsOutcome.OK


async def test_resolvers_that_agree_give_no_warning(settings: Settings, targets: Targets) -> None:
    result = await dns_check(
        settings, "ok.test", dns_resolvers=[targets.resolver, targets.alt_resolver]
    )
    assert result.outcome is DnsOutcome.OK
    assert result.warnings == []
    assert [(r.resolver, r.outcome, r.addresses) for r in result.resolvers] == [
        (targets.resolver, DnsOutcome.OK, ["127.0.0.1"]),
        (targets.alt_resolver, DnsOutcome.OK, ["127.0.0.1"]),
    ]


@pytest.mark.parametrize(
    ("domain", "alt_says"),
    [("split.test", "answered 127.0.0.2"), ("half.test", "answered NXDOMAIN")],
)
@pytest.mark.parametrize("alt_first", [False, True])
async def test_resolvers_that_disagree_give_a_warning(
    settings: Settings, targets: Targets, domain: str, alt_says: str, alt_first: bool
) -> None:
    resolvers = [targets.resolver, targets.alt_resolver]
    result = await dns_check(
        settings, domain, dns_resolvers=resolvers[::-1] if alt_first else resolvers
    )
    assert result.outcome is DnsOutcome.OK  # still resolves: DEGRADED, not DOWN
    (warning,) = result.warnings
    assert warning.startswith("resolvers disagree")
    assert f"{targets.resolver} answered 127.0.0.1" in warning
    assert f"{targets.alt_resolver} {alt_says}" in warning
    assert len(result.resolvers) == 2


async def test_a_resolver_that_times_out_is_not_a_disagreement(
    settings: Settings, targets: Targets
) -> None:
    result = await dns_check(
        settings, "flaky.test", dns_resolvers=[targets.alt_resolver, targets.resolver]
    )
    assert result.outcome is DnsOutcome.OK
    assert result.resolver == targets.resolver
    assert result.warnings == []
    assert [r.outcome for r in result.resolvers] == [DnsOutcome.TIMEOUT, DnsOutcome.OK]


async def test_without_comparison_resolvers_are_fallbacks(
    settings: Settings, targets: Targets
) -> None:
    result = await dns_check(
        settings,
        "split.test",
        dns_resolvers=[targets.resolver, targets.alt_resolver],
        dns_compare_resolvers=False,
    )
    assert result.addresses == ["127.0.0.1"]
    assert result.warnings == []
    assert result.resolvers == []


async def test_many_checks_share_a_socket_and_each_gets_its_own_answer(
    settings: Settings, targets: Targets
) -> None:
    """A hundred queries in flight on one socket: every reply goes to its own question, and
    a late reply (late.test, answered after the timeout) is never taken for another. (Not
    many more: the test server's socket buffer, not the probe, starts dropping them.)"""
    names = ["ok.test", "nothing.test", "nx-name.test", "late.test"] * 12
    async with probe_context(settings) as ctx:
        results = await asyncio.gather(
            *(dns_probe(Site(domain=n, url=f"https://{n}/"), ctx) for n in names)
        )
    got = {(name, r.outcome, tuple(r.addresses)) for name, r in zip(names, results, strict=True)}
    assert got == {
        ("ok.test", DnsOutcome.OK, ("127.0.0.1",)),
        ("nothing.test", DnsOutcome.OK, ("127.0.0.9",)),
        ("nx-name.test", DnsOutcome.NXDOMAIN, ()),
        ("late.test", DnsOutcome.TIMEOUT, ()),
    }


async def test_the_source_port_changes_as_sockets_are_retired(
    settings: Settings, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dns_transport, "QUERIES_PER_SOCKET", 4)
    targets.dns.sources.clear()
    async with probe_context(settings) as ctx:
        for _ in range(6):  # two queries (A, AAAA) per check
            result = await dns_probe(Site(domain="ok.test", url="https://ok.test/"), ctx)
            assert result.addresses == ["127.0.0.1"]
    assert len({port for _, port in targets.dns.sources}) == 3


async def test_queries_beyond_a_sockets_share_open_another_socket(
    settings: Settings, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replies to a burst must fit a socket's receive buffer, so one socket carries at most
    IN_FLIGHT_PER_SOCKET queries. 20 checks (40 queries) at 8 per socket need more than one
    socket and at most 5 (fewer when early replies free room before the last checks start)."""
    monkeypatch.setattr(dns_transport, "IN_FLIGHT_PER_SOCKET", 8)
    targets.dns.sources.clear()
    async with probe_context(settings) as ctx:
        results = await asyncio.gather(
            *(dns_probe(Site(domain="ok.test", url="https://ok.test/"), ctx) for _ in range(20))
        )
    assert {tuple(r.addresses) for r in results} == {("127.0.0.1",)}
    assert 2 <= len({port for _, port in targets.dns.sources}) <= 5
