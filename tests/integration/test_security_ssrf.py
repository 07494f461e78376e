"""The SSRF guard against a real DNS server and a real HTTP server on loopback.

Through the core API: on-demand checks of unmonitored names that resolve to internal addresses
are refused with a 403, before anything connects to them. Through the probes: redirects to an
internal name or to an IP literal are refused too, and the target that would have been reached
counts no request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from fastapi.testclient import TestClient

from rechecker.config import Settings
from rechecker.core.api import create_app
from rechecker.core.checker import check_site
from rechecker.models import CheckResult, Site, State
from rechecker.probes import PROBES
from rechecker.results import HttpResult
from rechecker.security import ssrf
from rechecker.security.settings import ApiSettings
from rechecker.store import Store
from tests.support.dns_server import Answer, DnsServer
from tests.support.targets import LoopThread, probe_context

#: Unmonitored names and the class of address each resolves to.
INTERNAL = {
    "loopback.test": (["127.0.0.1"], [], "loopback"),
    "loopback6.test": ([], ["::1"], "loopback"),
    "ten.test": (["10.1.2.3"], [], "private"),
    "rfc1918.test": (["192.168.10.20"], [], "private"),
    "ula.test": ([], ["fd12:3456::1"], "private"),
    "linklocal.test": (["169.254.7.7"], [], "link-local"),
    "linklocal6.test": ([], ["fe80::1"], "link-local"),
    "metadata.test": (["169.254.169.254"], [], "cloud metadata"),
    "metadata6.test": ([], ["fd00:ec2::254"], "cloud metadata"),
    "alibaba.test": (["100.100.100.200"], [], "cloud metadata"),
    "cgnat.test": (["100.64.1.1"], [], "carrier-grade NAT"),
    "multicast.test": (["224.0.0.251"], [], "multicast"),
    "reserved.test": (["240.1.2.3"], [], "reserved"),
    "zero.test": (["0.0.0.0"], [], "unspecified"),
    "mapped.test": ([], ["::ffff:127.0.0.1"], "loopback (IPv4 127.0.0.1 inside IPv6)"),
    "mixed.test": (["93.184.215.14", "10.0.0.1"], [], "private"),
}
ZONE = {
    **{name: Answer(a=a, aaaa=aaaa) for name, (a, aaaa, _) in INTERNAL.items()},
    "public.test": Answer(a=["93.184.215.14"]),
    "named.test": Answer(a=["10.20.30.40"]),
    "front.test": Answer(a=["127.0.0.1"]),
    "internal.test": Answer(a=["127.0.0.1"]),
}


@dataclass
class World:
    resolver: str
    port: int
    hits: dict[str, int]


def _app(port: list[int], hits: dict[str, int]) -> web.Application:
    async def redirect(request: web.Request) -> web.Response:
        hits[request.path] = hits.get(request.path, 0) + 1
        where = {
            "literal": f"http://127.0.0.1:{port[0]}/secret",
            "literal6": f"http://[::ffff:127.0.0.1]:{port[0]}/secret",
            "name": f"http://internal.test:{port[0]}/secret",
            "metadata": "http://169.254.169.254/latest/meta-data/",
        }[request.match_info["to"]]
        raise web.HTTPFound(location=where)

    async def secret(_: web.Request) -> web.Response:
        hits["secret"] = hits.get("secret", 0) + 1
        return web.Response(text="internal only")

    app = web.Application()
    app.router.add_get("/to/{to}", redirect)
    app.router.add_get("/secret", secret)
    return app


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """A DNS server with the zone above and an HTTP server, in their own thread."""
    thread = LoopThread()
    server = DnsServer(ZONE)
    hits: dict[str, int] = {}
    port: list[int] = []
    runner = web.AppRunner(_app(port, hits), shutdown_timeout=0.1)

    async def start() -> None:
        await server.start("127.0.0.1")
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port.append(int(runner.addresses[0][1]))

    async def stop() -> None:
        await runner.cleanup()
        await server.stop()

    thread.run(start())
    try:
        yield World(resolver=f"127.0.0.1:{server.port}", port=port[0], hits=hits)
    finally:
        thread.run(stop())
        thread.close()


def core_settings(tmp_path: Path, world: World, *allow: str) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        dns_resolvers=[world.resolver],
        dns_timeout=1.0,
        http_timeout=2.0,
        schedulers_enabled=False,
        api=ApiSettings(ssrf_allow=list(allow)),
    )


@pytest.fixture
def core(tmp_path: Path, world: World) -> Iterator[TestClient]:
    with TestClient(
        create_app(core_settings(tmp_path, world)), client=("127.0.0.1", 50000)
    ) as client:
        yield client


@pytest.mark.parametrize("name", sorted(INTERNAL))
@pytest.mark.parametrize("kind", ["http", "check", "dns"])
def test_unmonitored_internal_names_are_refused(core: TestClient, name: str, kind: str) -> None:
    response = core.post(f"/{kind}/{name}")
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert f"{name} resolves to a {INTERNAL[name][2]} address" in detail
    assert "RECHECKER_API__SSRF_ALLOW" in detail
    # The caller learns the class of address, not the address.
    assert "10.1.2.3" not in detail and "169.254.169.254" not in detail


def test_public_names_pass(core: TestClient) -> None:
    result = core.post("/dns/public.test")
    assert result.status_code == 200
    assert result.json()["addresses"] == ["93.184.215.14"]


def test_the_allow_list_permits_networks_and_names(tmp_path: Path, world: World) -> None:
    settings = core_settings(tmp_path, world, "127.0.0.0/8", "named.test")
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
        allowed = client.post("/http/loopback.test")
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["url"] == "https://loopback.test/"
        assert client.post("/dns/named.test").json()["addresses"] == ["10.20.30.40"]
        assert client.post("/dns/ten.test").status_code == 403
        assert client.post("/check/metadata.test").status_code == 403


def test_monitored_sites_are_checked_like_the_scheduler_does(core: TestClient) -> None:
    store: Store = core.app.state.store  # type: ignore[attr-defined]
    assert core.portal is not None
    core.portal.call(store.add_sites, [Site(domain="ten.test", url="https://ten.test/")])
    assert core.post("/dns/ten.test").json()["addresses"] == ["10.1.2.3"]


async def fetch(
    world: World, site: Site, *allow: str, tmp_path: Path
) -> tuple[HttpResult, CheckResult, list[str]]:
    """One guarded HTTP probe and full check of ``site``; the results and refused addresses."""
    settings = core_settings(tmp_path, world)
    policy = ssrf.AddressPolicy.from_entries(ApiSettings(ssrf_allow=list(allow)).ssrf_allow)
    async with probe_context(settings) as ctx:
        with ssrf.guarding(policy) as guard:
            probed = await PROBES["http"](site, ctx)
            checked = await check_site(site, ctx)
    assert isinstance(probed, HttpResult)
    return probed, checked, [r.address for r in guard.refused]


@pytest.mark.parametrize(
    ("to", "refused"),
    [
        ("literal", "127.0.0.1"),
        ("literal6", "::ffff:7f00:1"),
        ("name", "127.0.0.1"),
        ("metadata", "169.254.169.254"),
    ],
)
async def test_redirects_to_internal_addresses_are_refused_before_connecting(
    world: World, tmp_path: Path, to: str, refused: str
) -> None:
    before = world.hits.get("secret", 0)
    redirected = world.hits.get(f"/to/{to}", 0)
    site = Site(domain="front.test", url=f"http://front.test:{world.port}/to/{to}")
    probed, checked, addresses = await fetch(world, site, "front.test", tmp_path=tmp_path)
    assert not probed.ok and probed.status_code is None
    assert checked.state is State.DOWN and checked.error_class.startswith("http_")
    # The allowed first hop answered the probe and the check; the target was never reached.
    assert world.hits[f"/to/{to}"] == redirected + 2
    assert addresses == [refused, refused]
    assert world.hits.get("secret", 0) == before


async def test_an_allowed_redirect_target_is_reached(world: World, tmp_path: Path) -> None:
    """The control: the same redirect with its target allowed reaches the secret."""
    before = world.hits.get("secret", 0)
    site = Site(domain="front.test", url=f"http://front.test:{world.port}/to/name")
    probed, checked, addresses = await fetch(
        world, site, "front.test", "internal.test", tmp_path=tmp_path
    )
    assert probed.ok and checked.state is State.UP, probed
    assert addresses == []
    assert world.hits["secret"] == before + 2


async def test_pinned_addresses_of_a_check_are_guarded(world: World, tmp_path: Path) -> None:
    site = Site(domain="internal.test", url=f"http://internal.test:{world.port}/secret")
    before = world.hits.get("secret", 0)
    probed, checked, addresses = await fetch(world, site, tmp_path=tmp_path)
    assert addresses == ["127.0.0.1", "127.0.0.1"]
    assert not probed.ok and checked.state is State.DOWN
    assert world.hits.get("secret", 0) == before
