"""Each probe outcome, produced by a real server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psutil
import pytest
import uvloop

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


#: domain -> the error class its check ends with ("" for up).
ERROR_CLASSES = {
    "ok.test": "",
    "moved.test": "",
    "nxdomain.test": "dns_nxdomain",
    "servfail.test": "dns_servfail",
    "silent.test": "dns_timeout",
    "unavailable.test": "http_http_status",
    "refused.test": "http_refused",
    "slow.test": "http_timeout",
    "tls.test": "http_tls",
}


@pytest.mark.parametrize(("domain", "error_class"), ERROR_CLASSES.items())
async def test_check_classifies_every_failure(
    ctx: ProbeContext, targets: Targets, domain: str, error_class: str
) -> None:
    result = await check_site(site(targets, domain), ctx)
    assert result.error_class == error_class
    assert result.state is (State.UP if not error_class else State.DOWN)
    assert (result.error_message == "") is (not error_class)


def test_checks_classify_the_same_under_uvloop(settings: Settings, targets: Targets) -> None:
    """The core runs on uvloop, whose transports differ from asyncio's (the tests above run on
    asyncio): the same checks, the same classes, and no connection left open."""

    async def check_all() -> tuple[dict[str, str], list[str]]:
        async with ProbeContext(ProbeSettings.from_settings(settings)) as context:
            results = [await check_site(site(targets, domain), context) for domain in ERROR_CLASSES]
        for _ in range(10):  # a closed transport lets go of its socket on a later iteration
            await asyncio.sleep(0)
        # Counted while the loop runs: closing the loop would close whatever a check left.
        return {result.domain: result.error_class for result in results}, _client_connections()

    classes, left_open = uvloop.run(check_all())
    assert classes == ERROR_CLASSES
    assert left_open == []


def _client_connections() -> list[str]:
    """This process's TCP connections to its own servers (the targets run here too): the
    client ends, not the servers' ends, which a slow target may still hold."""
    connections = psutil.Process().net_connections(kind="tcp")
    listening = {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN}
    return [
        f"{c.laddr} -> {c.raddr} {c.status}"
        for c in connections
        if c.raddr and c.raddr.port in listening and c.laddr.port not in listening
    ]


async def test_http_connects_to_the_addresses_dns_found(
    ctx: ProbeContext, targets: Targets
) -> None:
    """The HTTP probe reuses the check's DNS answer instead of resolving again."""
    before = targets.dns.queries
    result = await check_site(site(targets, "ok.test"), ctx)
    assert result.state is State.UP
    assert targets.dns.queries - before == 2  # one A, one AAAA: none for the HTTP probe
