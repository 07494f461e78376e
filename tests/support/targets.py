"""The loopback world the tests check: a DNS server and HTTP/HTTPS targets in one thread.

The servers run in their own thread and event loop so they keep answering while a test
blocks (a subprocess running ``rechecker``, Flask's test client, a sync TestClient).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dns.rcode
import trustme
from aiohttp import web

from tests.support.dns_server import Answer, DnsServer

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
#: How long the "slow" target waits before answering; checks use a shorter HTTP timeout.
SLOW_SECONDS = 30.0


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
    hits: dict[str, int] = field(default_factory=dict)

    @property
    def resolver(self) -> str:
        return f"{LOOPBACK}:{self.dns.port}"

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
    "silent.test": Answer(silent=True),
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

    app = web.Application()
    app.router.add_get("/", _handler(hits, ok))
    app.router.add_get("/moved", _handler(hits, moved))
    app.router.add_get("/unavailable", _handler(hits, unavailable))
    app.router.add_get("/slow", _handler(hits, slow))
    return app


async def start_targets(
    workdir: Path,
) -> tuple[Targets, Callable[[], Coroutine[Any, Any, None]]]:
    """Start DNS, HTTP and HTTPS servers on loopback; returns them and their stopper."""
    dns_server = DnsServer(ZONE)
    await dns_server.start(LOOPBACK)

    ca = trustme.CA()
    cert = ca.issue_cert("tls.test", "ok.test")
    ca_file = workdir / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(tls)

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
        hits=hits,
    )

    async def stop() -> None:
        await runner.cleanup()
        await dns_server.stop()

    return targets, stop
