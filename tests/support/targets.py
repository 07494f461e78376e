"""The loopback world the tests check: a DNS server and HTTP/HTTPS targets in one thread.

The servers run in their own thread and event loop so they keep answering while a test
blocks (a subprocess running ``rechecker``, Flask's test client, a sync TestClient).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import dns.rcode
import trustme
from aiohttp import web

from rechecker.config import Settings
from rechecker.probes import ProbeContext, ProbeSettings
from tests.support.dns_server import Answer, DnsServer

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
#: How long the "slow" targets wait before answering; checks use shorter timeouts.
SLOW_SECONDS = 30.0
#: Size of the /big body: well above the default body limit.
BODY_SIZE_BIG = 256 * 1024


class LoopThread:
    """An event loop in a daemon thread, for servers that must outlive a blocking test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.run(self._cancel_pending())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    @staticmethod
    async def _cancel_pending() -> None:
        """Requests still held open (the slow target) end with the loop, not after it."""
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


@asynccontextmanager
async def probe_context(settings: Settings, **changes: Any) -> AsyncIterator[ProbeContext]:
    """Probes set up like a worker with ``settings``, some of them changed."""
    probe_settings = ProbeSettings.from_settings(settings.model_copy(update=changes))
    async with ProbeContext(probe_settings) as context:
        yield context


def free_port() -> int:
    """A port nothing listens on: bound, read and released, so connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class Targets:
    """Addresses of every target, and URLs keyed by the behaviour they exhibit."""

    dns: DnsServer
    http_port: int
    https_port: int
    refused_port: int
    ca_file: Path
    #: A second DNS server: the same zone but for a few names (see ALT_ZONE).
    dns_alt: DnsServer
    #: Accepts connections and closes them without answering.
    hangup_port: int
    #: When the certificates of expiring.test and expired.test end.
    expiring_on: datetime
    expired_on: datetime
    hits: dict[str, int] = field(default_factory=dict)

    @property
    def resolver(self) -> str:
        return f"{LOOPBACK}:{self.dns.port}"

    @property
    def alt_resolver(self) -> str:
        return f"{LOOPBACK}:{self.dns_alt.port}"

    def url(self, domain: str, path: str = "/", *, https: bool = False) -> str:
        """A URL on the HTTP (or HTTPS) target; the path picks the behaviour (see _app)."""
        if https:
            return f"https://{domain}:{self.https_port}{path}"
        return f"http://{domain}:{self.http_port}{path}"

    def urls(self) -> dict[str, str]:
        """domain -> URL for each kind of target (the inventory of the end-to-end tests)."""
        return {
            "ok.test": f"http://ok.test:{self.http_port}/",
            "moved.test": f"http://moved.test:{self.http_port}/moved",
            "unavailable.test": f"http://unavailable.test:{self.http_port}/unavailable",
            "slow.test": f"http://slow.test:{self.http_port}/slow",
            "refused.test": f"http://refused.test:{self.refused_port}/",
            "tls.test": f"https://tls.test:{self.https_port}/",
            "nxdomain.test": f"http://nxdomain.test:{self.http_port}/",
            "servfail.test": f"http://servfail.test:{self.http_port}/",
            "silent.test": f"http://silent.test:{self.http_port}/",
        }


ZONE = {
    "ok.test": Answer(a=[LOOPBACK]),
    "moved.test": Answer(a=[LOOPBACK]),
    "unavailable.test": Answer(a=[LOOPBACK]),
    "slow.test": Answer(a=[LOOPBACK]),
    "refused.test": Answer(a=[LOOPBACK]),
    "tls.test": Answer(a=[LOOPBACK]),
    "v6.test": Answer(aaaa=["::1"]),
    "noanswer.test": Answer(),
    "servfail.test": Answer(rcode=dns.rcode.SERVFAIL),
    "refusing.test": Answer(rcode=dns.rcode.REFUSED),
    # Nothing listens on this loopback address: https and http are both refused.
    "nothing.test": Answer(a=["127.0.0.9"]),
    "silent.test": Answer(silent=True),
    "late.test": Answer(a=[LOOPBACK], delay=SLOW_SECONDS),
    "garbage.test": Answer(garbage=True),
    "cut.test": Answer(a=[LOOPBACK], cut=True),
    "truncated.test": Answer(a=[LOOPBACK], truncated_udp=True),
    "alias.test": Answer(cname="ok.test."),
    "mail.test": Answer(
        a=[LOOPBACK],
        ttl=300,
        records={
            "MX": ["10 mx1.mail.test.", "20 mx2.mail.test."],
            "TXT": ['"v=spf1 -all"'],
            "NS": ["ns1.mail.test."],
            "CAA": ['0 issue "ca.test"'],
        },
    ),
    # Resolvers compared: the same answer from both, a different one, NXDOMAIN from one,
    # and silence from one (see ALT_ZONE).
    "split.test": Answer(a=[LOOPBACK]),
    "half.test": Answer(a=[LOOPBACK]),
    "flaky.test": Answer(a=[LOOPBACK]),
    # TLS names, each served its own certificate by SNI on the HTTPS port.
    "expired.test": Answer(a=[LOOPBACK]),
    "expiring.test": Answer(a=[LOOPBACK]),
    "wronghost.test": Answer(a=[LOOPBACK]),
    "selfsigned.test": Answer(a=[LOOPBACK]),
    "untrusted.test": Answer(a=[LOOPBACK]),
}

ALT_ZONE = {
    **{name: answer for name, answer in ZONE.items() if name != "half.test"},
    "split.test": Answer(a=["127.0.0.2"]),
    "flaky.test": Answer(silent=True),
}


def _handler(
    hits: dict[str, int], respond: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        hits[request.path] = hits.get(request.path, 0) + 1
        return await respond(request)

    return handle


def _app(hits: dict[str, int]) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=f"hello from {request.host}")

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(location="/")

    async def unavailable(_: web.Request) -> web.Response:
        return web.Response(status=503, text="down for maintenance")

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(SLOW_SECONDS)
        return web.Response(text="too late")

    async def slow_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"the start, ")
        await asyncio.sleep(SLOW_SECONDS)
        return response

    async def redirect(request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        if left == 0:
            return web.Response(text="arrived")
        raise web.HTTPFound(location=f"/redirect/{left - 1}")

    async def loop(_: web.Request) -> web.Response:
        raise web.HTTPFound(location="/loop")

    big_body = b"x" * BODY_SIZE_BIG

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=big_body)

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="as asked")

    app = web.Application()
    app.router.add_get("/", _handler(hits, ok))
    app.router.add_get("/moved", _handler(hits, moved))
    app.router.add_get("/unavailable", _handler(hits, unavailable))
    app.router.add_get("/slow", _handler(hits, slow))
    app.router.add_get("/slow-body", _handler(hits, slow_body))
    app.router.add_get("/redirect/{left:\\d+}", _handler(hits, redirect))
    app.router.add_get("/loop", _handler(hits, loop))
    app.router.add_get("/big", _handler(hits, big))
    app.router.add_get("/status/{code:\\d+}", _handler(hits, status))
    return app


def _server_context(configure: Callable[[ssl.SSLContext], None]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    configure(context)
    return context


def _tls_contexts(
    ca: trustme.CA, workdir: Path, now: datetime
) -> tuple[ssl.SSLContext, datetime, datetime]:
    """The HTTPS target's context (tls.test, ok.test) with, by SNI, one certificate per TLS
    failure; and when the expiring and expired certificates end."""
    expiring_on = (now + timedelta(days=5)).replace(microsecond=0)
    expired_on = (now - timedelta(days=2)).replace(microsecond=0)
    stranger = trustme.CA(organization_name="Stranger CA")
    self_signed = workdir / "self-signed.pem"
    self_signed.write_bytes(stranger.private_key_pem.bytes() + stranger.cert_pem.bytes())
    by_name = {
        "expired.test": _server_context(
            ca.issue_cert(
                "expired.test", not_before=now - timedelta(days=90), not_after=expired_on
            ).configure_cert
        ),
        "expiring.test": _server_context(
            ca.issue_cert("expiring.test", not_after=expiring_on).configure_cert
        ),
        "wronghost.test": _server_context(ca.issue_cert("other.test").configure_cert),
        "untrusted.test": _server_context(stranger.issue_cert("untrusted.test").configure_cert),
        "selfsigned.test": _server_context(lambda c: c.load_cert_chain(self_signed)),
    }
    default = _server_context(ca.issue_cert("tls.test", "ok.test").configure_cert)

    def choose(connection: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        chosen = by_name.get(name or "")
        if chosen is not None:
            connection.context = chosen

    default.sni_callback = choose
    return default, expiring_on, expired_on


async def _hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def start_targets(
    workdir: Path,
) -> tuple[Targets, Callable[[], Coroutine[Any, Any, None]]]:
    """Start DNS, HTTP and HTTPS servers on loopback; returns them and their stopper."""
    dns_server = DnsServer(ZONE)
    await dns_server.start(LOOPBACK)
    dns_alt = DnsServer(ALT_ZONE)
    await dns_alt.start(LOOPBACK)
    hangup = await asyncio.start_server(_hang_up, LOOPBACK, 0)

    ca = trustme.CA()
    ca_file = workdir / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls, expiring_on, expired_on = _tls_contexts(ca, workdir, datetime.now(UTC))

    hits: dict[str, int] = {}
    runner = web.AppRunner(_app(hits), shutdown_timeout=0.1)
    await runner.setup()
    http_site = web.TCPSite(runner, LOOPBACK, 0)
    https_site = web.TCPSite(runner, LOOPBACK, 0, ssl_context=tls)
    await http_site.start()
    await https_site.start()

    (_, http_port), (_, https_port) = runner.addresses[:2]
    targets = Targets(
        dns=dns_server,
        http_port=int(http_port),
        https_port=int(https_port),
        refused_port=free_port(),
        ca_file=ca_file,
        dns_alt=dns_alt,
        hangup_port=int(hangup.sockets[0].getsockname()[1]),
        expiring_on=expiring_on,
        expired_on=expired_on,
        hits=hits,
    )

    async def stop() -> None:
        await runner.cleanup()
        hangup.close()
        await hangup.wait_closed()
        await dns_alt.stop()
        await dns_server.stop()

    return targets, stop
