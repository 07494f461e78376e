"""The HTTP probe's own client must read responses as aiohttp does (the client it replaced).

A loopback server answers each path with canned bytes; the probe's client and aiohttp (with
decompression off and the same body limit, as the probe used it) fetch every one, and must
agree on status, reason, version, final URL and body bytes read. Responses aiohttp refuses
must be refused too, each with its own error class.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from yarl import URL

from rechecker.probes import http_transport
from rechecker.probes.http_transport import HttpClient, Request

LOOPBACK = "127.0.0.1"
LIMIT = 10_000

#: path -> the whole response the server sends (it then closes the connection).
RESPONSES: dict[str, bytes] = {
    "/length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "/chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: yes\r\n\r\n"
    ),
    "/tiny-chunks": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"1\r\nx\r\n" * 20_000
    + b"0\r\n\r\n",
    "/until-close": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"y" * 3000,
    "/http10": b"HTTP/1.0 200 OK\r\n\r\nold",
    "/no-content": b"HTTP/1.1 204 No Content\r\n\r\n",
    "/interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "/big": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"z" * 100_000,
    "/big-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%x\r\n%s\r\n" % (4096, b"c" * 4096) for _ in range(10))
    + b"0\r\n\r\n",
    "/missing": b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
    "/no-reason": b"HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n",
    "/lf-only": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nlf",
    "/redirect": b"HTTP/1.1 302 Found\r\nLocation: /length\r\nContent-Length: 0\r\n\r\n",
    "/redirect-absolute": b"HTTP/1.1 301 Moved\r\nLocation: http://%s:PORT/chunked\r\n\r\n"
    % LOOPBACK.encode(),
    "/see-other": b"HTTP/1.1 303 See Other\r\nLocation: missing\r\nContent-Length: 0\r\n\r\n",
    "/redirect-without-location": b"HTTP/1.1 302 Found\r\nContent-Length: 4\r\n\r\nnone",
    "/charset": b'HTTP/1.1 200 OK\r\nContent-Type: text/html; charset="ISO-8859-1"\r\n'
    b"Content-Length: 1\r\n\r\n\xe9",
}

#: path -> the response the probe's client must refuse, and how.
BROKEN: dict[str, tuple[bytes, type[http_transport.HttpError]]] = {
    "/not-http": (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", http_transport.ProtocolError),
    "/short-body": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly this",
        http_transport.ServerDisconnected,
    ),
    "/nothing": (b"", http_transport.ServerDisconnected),
    "/bad-length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        http_transport.ProtocolError,
    ),
    "/bad-chunk": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        http_transport.ProtocolError,
    ),
    "/long-line": (
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"l" * 9000 + b"\r\n\r\n",
        http_transport.ProtocolError,
    ),
    "/many-headers": (
        b"HTTP/1.1 200 OK\r\n" + b"X-H: 1\r\n" * 200 + b"\r\n",
        http_transport.ProtocolError,
    ),
    "/loop": (
        b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n",
        http_transport.TooManyRedirects,
    ),
    "/ftp-redirect": (
        b"HTTP/1.1 302 Found\r\nLocation: ftp://example.test/\r\n\r\n",
        http_transport.ProtocolError,
    ),
}


@dataclass
class Canned:
    port: int

    def url(self, path: str) -> URL:
        return URL(f"http://{LOOPBACK}:{self.port}{path}")


@pytest.fixture
async def canned() -> AsyncIterator[Canned]:
    port = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            response = RESPONSES.get(path) or BROKEN[path][0]
            writer.write(response.replace(b"PORT", str(port).encode()))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield Canned(port)


class _Quiet:
    """An observer that only remembers the redirects it was told of."""

    def __init__(self) -> None:
        self.redirects = 0

    def resolving(self) -> None: ...
    def connecting(self) -> None: ...
    def waiting(self) -> None: ...
    def reading(self) -> None: ...

    def redirected(self, count: int, location: str) -> None:
        self.redirects = count


async def _no_names(host: str) -> list[str]:
    raise OSError(f"{host}: only IP literals here")


Seen = tuple[int, str, str, str, bytes, str | None]


async def ours(url: URL) -> Seen:
    client = HttpClient(ssl.create_default_context(), "test", _no_names)
    body = bytearray()
    response = await client.get(
        url, Request(max_redirects=5, body_limit=LIMIT, keep=body, identity=False), _Quiet()
    )
    assert response.body_bytes == len(body)
    return (
        response.status,
        response.reason,
        response.version,
        str(response.url),
        bytes(body),
        response.charset,
    )


async def aiohttps(url: URL) -> Seen:
    """What the probe got from aiohttp: decompression off, the body read up to the limit."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url, max_redirects=6) as response,
    ):
        body = bytearray()
        while len(body) < LIMIT:
            chunk = await response.content.read(LIMIT - len(body))
            if not chunk:
                break
            body += chunk
        version = response.version
        return (
            response.status,
            response.reason or "",
            f"{version.major}.{version.minor}" if version else "",
            str(response.url),
            bytes(body),
            response.charset,
        )


@pytest.mark.parametrize("path", sorted(RESPONSES))
async def test_a_response_is_read_as_aiohttp_reads_it(canned: Canned, path: str) -> None:
    url = canned.url(path)
    assert await ours(url) == await aiohttps(url)


@pytest.mark.parametrize("path", sorted(BROKEN))
async def test_a_broken_response_is_refused_with_its_class(canned: Canned, path: str) -> None:
    with pytest.raises(BROKEN[path][1]):
        await ours(canned.url(path))


async def test_the_redirect_limit_counts_every_redirect(canned: Canned) -> None:
    client = HttpClient(ssl.create_default_context(), "test", _no_names)
    request = Request(max_redirects=1, body_limit=LIMIT, keep=None, identity=False)
    observer = _Quiet()
    response = await client.get(canned.url("/redirect-absolute"), request, observer)
    assert (response.status, response.redirects, observer.redirects) == (200, 1, 1)
    with pytest.raises(http_transport.TooManyRedirects) as raised:
        await client.get(canned.url("/loop"), request, _Quiet())
    assert (raised.value.redirects, raised.value.location) == (2, "/loop")


async def test_without_redirects_a_redirect_is_the_response(canned: Canned) -> None:
    client = HttpClient(ssl.create_default_context(), "test", _no_names)
    request = Request(max_redirects=0, body_limit=LIMIT, keep=None, identity=False)
    response = await client.get(canned.url("/loop"), request, _Quiet())
    assert (response.status, response.redirects, response.headers["location"]) == (302, 0, "/loop")
