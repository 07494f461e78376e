"""Each probe outcome, produced by a real server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rechecker.config import Settings
from rechecker.core.checker import check_site
from rechecker.models import DnsOutcome, HttpOutcome, Site, State
from rechecker.probes import PROBES, ProbeContext, ProbeSettings
from rechecker.probes.dns import resolve_addresses
from tests.support.targets import Targets


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[ProbeContext]:
    async with ProbeContext(ProbeSettings.from_settings(settings)) as context:
        yield context


def site(targets: Targets, domain: str) -> Site:
    return Site(domain=domain, url=targets.urls()[domain])


@pytest.mark.parametrize(
    ("domain", "outcome", "addresses"),
    [
        ("ok.test", DnsOutcome.OK, ["127.0.0.1"]),
        ("v6.test", DnsOutcome.OK, ["::1"]),
        ("nxdomain.test", DnsOutcome.NXDOMAIN, []),
        ("noanswer.test", DnsOutcome.NOANSWER, []),
        ("servfail.test", DnsOutcome.SERVFAIL, []),
        ("refusing.test", DnsOutcome.REFUSED, []),
        ("silent.test", DnsOutcome.TIMEOUT, []),
    ],
)
async def test_dns_outcomes(
    ctx: ProbeContext, targets: Targets, domain: str, outcome: DnsOutcome, addresses: list[str]
) -> None:
    result = await resolve_addresses(domain, ctx)
    assert result.outcome is outcome
    assert result.addresses == addresses
    assert result.resolver == targets.resolver


async def test_dns_with_no_reachable_resolver_is_a_timeout_not_an_exception(
    settings: Settings, targets: Targets
) -> None:
    probe_settings = ProbeSettings.from_settings(
        settings.model_copy(update={"dns_resolvers": [f"127.0.0.1:{targets.refused_port}"]})
    )
    async with ProbeContext(probe_settings) as context:
        result = await resolve_addresses("ok.test", context)
    assert result.outcome in (DnsOutcome.TIMEOUT, DnsOutcome.ERROR)
    assert result.addresses == []


@pytest.mark.parametrize(
    ("domain", "outcome", "status_code"),
    [
        ("ok.test", HttpOutcome.OK, 200),
        ("moved.test", HttpOutcome.OK, 200),
        ("unavailable.test", HttpOutcome.HTTP_STATUS, 503),
        ("refused.test", HttpOutcome.REFUSED, None),
        ("slow.test", HttpOutcome.TIMEOUT, None),
        ("tls.test", HttpOutcome.TLS, None),
    ],
)
async def test_http_outcomes(
    ctx: ProbeContext, targets: Targets, domain: str, outcome: HttpOutcome, status_code: int | None
) -> None:
    result = await PROBES["http"](site(targets, domain), ctx)
    assert result.model_dump()["outcome"] is outcome
    assert result.model_dump()["status_code"] == status_code


async def test_redirect_is_followed_to_the_final_url(ctx: ProbeContext, targets: Targets) -> None:
    result = await PROBES["http"](site(targets, "moved.test"), ctx)
    assert result.model_dump()["final_url"] == f"http://moved.test:{targets.http_port}/"


async def test_https_with_a_trusted_ca_is_up(settings: Settings, targets: Targets) -> None:
    probe_settings = ProbeSettings.from_settings(
        settings.model_copy(update={"ca_file": targets.ca_file})
    )
    async with ProbeContext(probe_settings) as context:
        result = await check_site(site(targets, "tls.test"), context)
    assert result.state is State.UP, result.error_message
    assert result.status_code == 200


@pytest.mark.parametrize(
    ("domain", "error_class"),
    [
        ("ok.test", ""),
        ("nxdomain.test", "dns_nxdomain"),
        ("servfail.test", "dns_servfail"),
        ("silent.test", "dns_timeout"),
        ("unavailable.test", "http_http_status"),
        ("refused.test", "http_refused"),
        ("slow.test", "http_timeout"),
        ("tls.test", "http_tls"),
    ],
)
async def test_check_classifies_every_failure(
    ctx: ProbeContext, targets: Targets, domain: str, error_class: str
) -> None:
    result = await check_site(site(targets, domain), ctx)
    assert result.error_class == error_class
    assert result.state is (State.UP if not error_class else State.DOWN)
    assert (result.error_message == "") is (not error_class)


async def test_http_connects_to_the_addresses_dns_found(
    ctx: ProbeContext, targets: Targets
) -> None:
    """The HTTP probe reuses the check's DNS answer instead of resolving again."""
    before = targets.dns.queries
    result = await check_site(site(targets, "ok.test"), ctx)
    assert result.state is State.UP
    assert targets.dns.queries - before == 2  # one A, one AAAA: none for the HTTP probe
