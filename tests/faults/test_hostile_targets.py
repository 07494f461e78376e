"""Targets that misbehave on purpose: every check ends, within its timeout, with the right
error class, and a cycle over a thousand of them keeps the checker's memory bounded."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rechecker.config import Settings
from rechecker.core.checker import check_site
from rechecker.models import DnsOutcome, HttpOutcome, Site
from rechecker.probes import dns, http
from tests.support.hostile import (
    DNS_GARBAGE,
    DNS_TC_GARBAGE,
    DNS_TC_STALL,
    EXPECTED_CLASS,
    Hostile,
    HostileDns,
    start_hostile_http,
)
from tests.support.targets import LoopThread, probe_context

ROOT = Path(__file__).resolve().parents[2]
#: Where the figures of the last run go; docs/reliability.md quotes them.
REPORT = ROOT / "artifacts" / "reliability" / "hostile-cycle.json"
CYCLE_TARGETS = 1000
#: A correctness bound, not a speed one: an unbounded read of the 10 MB headers or endless
#: bodies across 1,000 targets would blow far past it.
PEAK_RSS_LIMIT_MB = 400
#: Timeouts of the big cycle, generous for 200 checks at once on two shared CI cores
#: with the hostile servers in this process: the classes are asserted, not the speed.
CYCLE_DNS_TIMEOUT = 2.0
CYCLE_HTTP_TIMEOUT = 3.0
#: Checks in flight: the default. (When one UDP socket carried every DNS query, replies
#: overflowed its receive buffer at 200 and good names timed out; sockets now carry at most
#: dns_transport.IN_FLIGHT_PER_SOCKET queries each.)
CYCLE_CONCURRENCY = 200


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    """The hostile servers, the nameserver on a loop of its own (see Hostile)."""
    http_thread, dns_thread = LoopThread(), LoopThread()
    nameserver = HostileDns()
    dns_thread.run(nameserver.start())
    ports, stop = http_thread.run(start_hostile_http())
    try:
        yield Hostile(dns=nameserver, ports=ports)
    finally:
        http_thread.run(stop())
        http_thread.close()
        dns_thread.run(nameserver.stop())
        dns_thread.close()


def hostile_settings(settings: Settings, hostile: Hostile) -> Settings:
    return settings.model_copy(update={"dns_resolvers": [hostile.resolver]})


async def test_each_hostile_target_ends_its_check_with_the_right_class(
    hostile: Hostile, settings: Settings
) -> None:
    """All kinds at once (the stalls cost a timeout each); a stall names where it stuck."""
    kinds = sorted(EXPECTED_CLASS)
    async with probe_context(hostile_settings(settings, hostile)) as ctx:
        results = await asyncio.gather(
            *(
                check_site(
                    Site(domain=f"{k}.1.hostile.test", url=hostile.url(k, f"{k}.1.hostile.test")),
                    ctx,
                )
                for k in kinds
            )
        )
    by_kind = dict(zip(kinds, results, strict=True))
    assert {k: r.error_class for k, r in by_kind.items()} == EXPECTED_CLASS, {
        k: r.error_message for k, r in by_kind.items()
    }
    assert "waiting for the first byte" in by_kind["hang"].error_message
    assert "in the TLS handshake" in by_kind["tls-stall"].error_message
    assert by_kind["endless"].http is not None
    assert by_kind["endless"].http.body_bytes == settings.http_body_limit


async def test_an_endless_body_is_read_up_to_the_limit_only(
    hostile: Hostile, settings: Settings
) -> None:
    domain = "endless.1.hostile.test"
    async with probe_context(
        hostile_settings(settings, hostile), http_body_limit=10_000, http_body_match="never"
    ) as ctx:
        result = await http.probe(Site(domain=domain, url=hostile.url("endless", domain)), ctx)
    assert result.outcome is HttpOutcome.BODY_MISMATCH
    assert result.body_bytes == 10_000


async def test_a_10_mb_header_is_refused_without_reading_it(
    hostile: Hostile, settings: Settings
) -> None:
    domain = "huge-header.1.hostile.test"
    async with probe_context(hostile_settings(settings, hostile)) as ctx:
        result = await http.probe(Site(domain=domain, url=hostile.url("huge-header", domain)), ctx)
    assert result.outcome is HttpOutcome.ERROR
    assert "8190 bytes" in result.message
    assert len(result.message) <= 500


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        (DNS_GARBAGE, DnsOutcome.ERROR),
        (DNS_TC_STALL, DnsOutcome.TIMEOUT),
        (DNS_TC_GARBAGE, DnsOutcome.ERROR),
    ],
)
async def test_a_hostile_nameserver_gives_a_classified_dns_result(
    kind: str, outcome: DnsOutcome, hostile: Hostile, settings: Settings
) -> None:
    """Against the public probe only: the DNS probe's internals are being rewritten."""
    domain = f"{kind}.1.hostile.test"
    async with probe_context(hostile_settings(settings, hostile)) as ctx:
        result = await dns.probe(Site(domain=domain, url=f"http://{domain}/"), ctx)
    assert result.outcome is outcome, result.message
    assert result.addresses == []


def test_a_cycle_over_1000_hostile_targets_keeps_memory_bounded(
    hostile: Hostile, settings: Settings, tmp_path: Path
) -> None:
    kinds = sorted(EXPECTED_CLASS)
    sites = []
    for n in range(CYCLE_TARGETS):
        kind = kinds[n % len(kinds)]
        domain = f"{kind}.{n}.hostile.test"
        sites.append({"domain": domain, "url": hostile.url(kind, domain), "kind": kind})
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "resolver": hostile.resolver,
                "dns_timeout": CYCLE_DNS_TIMEOUT,
                "http_timeout": CYCLE_HTTP_TIMEOUT,
                "concurrency": CYCLE_CONCURRENCY,
                "sites": sites,
            }
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "tests.faults.hostile_cycle", str(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")

    assert report["checked"] == report["recorded"] == CYCLE_TARGETS
    expected = {kind: {EXPECTED_CLASS[kind]: kinds_count(kinds, kind)} for kind in kinds}
    assert report["classes"] == expected
    assert report["peak_rss_mb"] < PEAK_RSS_LIMIT_MB


def kinds_count(kinds: list[str], kind: str) -> int:
    """How many of the cycle's targets are of ``kind`` (they are dealt round-robin)."""
    index = kinds.index(kind)
    return len(range(index, CYCLE_TARGETS, len(kinds)))
