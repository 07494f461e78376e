"""The HTTP probe's client: one GET over a fresh connection, HTTP/1.1, redirects followed.

Why not aiohttp's ``ClientSession``: a check makes one request on a new connection and reads
a capped body, and the session's machinery (connection pool, request and response objects,
multidicts, stream readers, cookie handling) cost about 0.14 ms of CPU per request on the
benchmark machine where a plain asyncio protocol costs 0.06 ms: a fifth of a whole check
(docs/benchmarks.md). This module keeps what the probe relies on and nothing else:

* connections go to the addresses ``resolve`` gives for a name (the DNS probe's, pinned per
  check) through ``aiohappyeyeballs`` (several addresses raced as aiohttp does), every socket
  made by :func:`rechecker.security.ssrf.guarded_socket`; TLS verifies against the probes'
  SSL context, whose ``ObservedSSLObject`` times the handshake;
* the request says ``Connection: close``: one request a connection, closed by the server;
* the response head is refused past :data:`MAX_LINE` bytes a line or :data:`MAX_FIELDS`
  lines, before more of it is read (a 10 MB header costs 8 KB); the body (Content-Length,
  chunked, or up to the close) is counted, and kept only when asked, up to a limit, then
  the connection is dropped;
* 301, 302, 303, 307 and 308 with a ``Location`` are followed, to http(s) URLs only, at most
  ``max_redirects`` times, each on a new connection.

Every failure is one of the :class:`HttpError` subclasses below, which the probe classifies.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, cast

import aiohappyeyeballs
from yarl import URL

from rechecker.security import ssrf

#: Longest status or header line accepted, as aiohttp (and nginx's default buffer) do.
MAX_LINE = 8190
#: Most header lines accepted in one response head.
MAX_FIELDS = 128
#: How long a connection attempt to one address may run before the next address is tried.
HAPPY_EYEBALLS_DELAY = 0.25
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NO_BODY_STATUSES = frozenset({204, 304})
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: A chunk size: hex digits, no sign, prefix or separator, at most 2**64 - 1.
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")

Resolve = Callable[[str], Awaitable[list[str]]]


class HttpError(Exception):
    """A request that did not end in a response."""


class ResolveError(HttpError):
    """The host's addresses could not be found (or were refused by the SSRF guard)."""

    def __init__(self, host: str, error: OSError) -> None:
        super().__init__(f"cannot resolve {host}: {error}")
        self.host, self.error = host, error


class ConnectError(HttpError):
    def __init__(self, host: str, port: int, error: OSError) -> None:
        super().__init__(f"cannot connect to {host}:{port}: {error}")
        self.host, self.port, self.error = host, port, error


class CertificateError(HttpError):
    """The server's certificate was not accepted."""

    def __init__(self, host: str, port: int, error: ssl.SSLCertVerificationError) -> None:
        super().__init__(f"certificate of {host}:{port} refused: {error}")
        self.host, self.port, self.error = host, port, error


class HandshakeError(HttpError):
    """The TLS handshake failed for another reason than the certificate."""

    def __init__(self, host: str, error: ssl.SSLError) -> None:
        super().__init__(f"TLS handshake with {host} failed: {error}")
        self.host, self.error = host, error


class ServerDisconnected(HttpError):
    """The server closed the connection before the response was complete."""


class ProtocolError(HttpError):
    """What the server sent is not an HTTP/1.x response (or is one beyond the limits)."""


class TooManyRedirects(HttpError):
    def __init__(self, redirects: int, location: str) -> None:
        super().__init__(f"more than {redirects - 1} redirects")
        self.redirects, self.location = redirects, location


class Observer(Protocol):
    """Told where the request is, to time its phases (the probe's timeline)."""

    def resolving(self) -> None: ...

    def connecting(self) -> None:
        """A new connection (the first, or a redirect's) is being made."""

    def waiting(self) -> None:
        """Connected and the request sent: waiting for the response."""

    def reading(self) -> None:
        """The final response's head is in: reading its body."""

    def redirected(self, count: int, location: str) -> None: ...


@dataclass(slots=True)
class Response:
    url: URL
    status: int
    reason: str
    version: str
    #: Lower-cased header names; a repeated header keeps its last value.
    headers: dict[str, str]
    redirects: int = 0
    #: Bytes of the body read (up to the limit), after any chunked framing was removed.
    body_bytes: int = 0

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of the Content-Type, if any."""
        _, _, params = self.headers.get("content-type", "").partition(";")
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset":
                return value.strip().strip('"') or None
        return None


@dataclass(frozen=True, slots=True)
class Request:
    max_redirects: int
    body_limit: int
    #: Where to keep the body's bytes (up to the limit); None to only count them.
    keep: bytearray | None
    #: Ask for an uncompressed body (when it is to be matched).
    identity: bool


class HttpClient:
    """GETs for the HTTP probe; one per worker (it holds no connections between requests)."""

    def __init__(self, ssl_context: ssl.SSLContext, user_agent: str, resolve: Resolve) -> None:
        self._ssl = ssl_context
        self._user_agent = user_agent
        self._resolve = resolve

    async def get(self, url: URL, request: Request, observer: Observer) -> Response:
        """The response to a GET of ``url`` after redirects, its body read (see
        :class:`Request`); raises :class:`HttpError`. Callers bound it with a timeout."""
        redirects = 0
        while True:
            response = await self._exchange(url, request, observer)
            if not _is_followed(response, request):
                response.redirects = redirects
                return response
            location = response.headers["location"]
            redirects += 1
            observer.redirected(redirects, location)
            if redirects > request.max_redirects:
                raise TooManyRedirects(redirects, location)
            url = _redirect_target(url, location)

    async def _exchange(self, url: URL, request: Request, observer: Observer) -> Response:
        host = url.raw_host
        if url.scheme not in _DEFAULT_PORTS or not host:
            raise ProtocolError(f"not an http(s) URL: {url}")
        port = url.port or _DEFAULT_PORTS[url.scheme]
        observer.connecting()
        sock = await self._connect(host, port, observer)
        loop = asyncio.get_running_loop()
        exchange = _Exchange(loop, request.body_limit, request.keep)
        secure = url.scheme == "https"
        try:
            await loop.create_connection(
                lambda: exchange,
                sock=sock,
                ssl=self._ssl if secure else None,
                server_hostname=host.rstrip(".") if secure else None,
            )
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(host, port, exc) from None
        except ssl.SSLError as exc:
            raise HandshakeError(host, exc) from None
        except OSError as exc:
            sock.close()
            raise ConnectError(host, port, exc) from None
        try:
            exchange.send(self._request_head(url, request.identity))
            observer.waiting()
            head = await exchange.head
            head.url = url
            if _is_followed(head, request):
                return head  # its body is not read: the connection is dropped
            observer.reading()
            head.body_bytes = await exchange.body
            return head
        finally:
            exchange.close()

    async def _connect(self, host: str, port: int, observer: Observer) -> socket.socket:
        """A socket connected to one of ``host``'s addresses (an IP literal is its own)."""
        literal = host.strip("[]")
        if _is_ip_literal(literal):
            addresses = [literal]
        else:
            observer.resolving()
            try:
                addresses = await self._resolve(host)
            except OSError as exc:
                raise ResolveError(host, exc) from None
            observer.connecting()
        infos = [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in addresses
        ]
        if not infos:
            raise ResolveError(host, OSError(f"{host} has no address"))
        try:
            return await aiohappyeyeballs.start_connection(
                infos,
                happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                interleave=1,
                socket_factory=ssrf.guarded_socket,
            )
        except OSError as exc:
            raise ConnectError(host, port, exc) from None

    def _request_head(self, url: URL, identity: bool) -> bytes:
        host = url.raw_host or ""
        if ":" in host:
            host = f"[{host}]"
        if url.explicit_port is not None and url.explicit_port != _DEFAULT_PORTS[url.scheme]:
            host = f"{host}:{url.explicit_port}"
        return (
            f"GET {url.raw_path_qs or '/'} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            f"User-Agent: {self._user_agent}\r\n"
            "Accept: */*\r\n"
            f"Accept-Encoding: {'identity' if identity else 'gzip, deflate'}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("latin-1")


def _is_followed(response: Response, request: Request) -> bool:
    return (
        request.max_redirects > 0
        and response.status in REDIRECT_STATUSES
        and "location" in response.headers
    )


def _is_ip_literal(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False


def _redirect_target(url: URL, location: str) -> URL:
    """Where a redirect leads: ``location`` resolved against ``url``, http(s) only."""
    try:
        target = url.join(URL(location.strip()))
    except ValueError as exc:
        raise ProtocolError(f"redirect to an invalid URL {location!r}: {exc}") from None
    if target.scheme not in _DEFAULT_PORTS or not target.raw_host:
        raise ProtocolError(f"redirect to a non-HTTP URL {location!r}")
    return target.with_fragment(None)


class _Exchange(asyncio.Protocol):
    """One response read off one connection: the head, then the body up to a limit."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, keep: bytearray | None):
        self.head: asyncio.Future[Response] = loop.create_future()
        self.body: asyncio.Future[int] = loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._reader: _BodyReader | None = None
        self._limit = limit
        self._keep = keep
        self._failed = False

    def send(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        for future in (self.head, self.body):
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # seen: a failure nobody waits for is not an error

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports are not asyncio.Transport subclasses, but are ones.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._failed:
            return  # the connection is being dropped: what still arrives does not count
        try:
            if self._reader is None:
                data = self._read_head(data)
                if self._reader is None:
                    return
            if not self.body.done() and self._reader.feed(data):
                self._finish()
        except ProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost says what the end means

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(exc or ServerDisconnected("closed before a response"))
        if self.body.done():
            return
        if self._reader is not None and self._reader.ends_with_close:
            self.body.set_result(self._reader.read)
        else:
            self.body.set_exception(exc or ServerDisconnected("closed before the body's end"))

    def _read_head(self, data: bytes) -> bytes:
        """Parse the response head once all of it is in; the bytes after it (the body's)."""
        buffer = self._buffer
        buffer += data
        while True:
            end = _head_end(buffer)
            if end < 0:
                _check_partial_head(buffer)
                return b""
            head = _parse_head(bytes(buffer[:end]))
            rest = bytes(buffer[end:])
            buffer.clear()
            if 100 <= head.status < 200 and head.status != 101:
                buffer += rest  # an interim response: the real one follows
                continue
            self._reader = _body_reader(head, self._limit, self._keep)
            self.head.set_result(head)
            return rest

    def _finish(self) -> None:
        assert self._reader is not None
        self.body.set_result(self._reader.read)
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: HttpError) -> None:
        self._failed = True
        for future in (self.head, self.body):
            if not future.done():
                future.set_exception(exc)
                break
        if self._transport is not None:
            self._transport.abort()


def _head_end(buffer: bytearray) -> int:
    """The index just past the blank line ending the head, or -1 while it is incomplete."""
    ends = [i + n for sep, n in ((b"\r\n\r\n", 4), (b"\n\n", 2)) if (i := buffer.find(sep)) >= 0]
    return min(ends) if ends else -1


def _check_partial_head(buffer: bytearray) -> None:
    """Refuse a head that is already too long, before any more of it is buffered."""
    lines = buffer.count(b"\n")
    if lines > MAX_FIELDS + 1:
        raise ProtocolError(f"response head has more than {MAX_FIELDS} header lines")
    last = buffer.rfind(b"\n")
    if len(buffer) - last - 1 > MAX_LINE:
        raise ProtocolError(f"response header line longer than {MAX_LINE} bytes")


def _parse_head(raw: bytes) -> Response:
    lines = raw.decode("latin-1").split("\n")
    status_line = lines[0].rstrip("\r")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    if len(lines) > MAX_FIELDS + 3:
        raise ProtocolError(f"response head has more than {MAX_FIELDS} header lines")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line:
            continue
        if len(line) > MAX_LINE:
            raise ProtocolError(f"response header line longer than {MAX_LINE} bytes")
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or line[0] in " \t":
            raise ProtocolError(f"invalid header line {line[:80]!r}")
        key = name.lower()
        value = value.strip()
        if key == "content-length" and headers.get(key, value) != value:
            raise ProtocolError("conflicting Content-Length headers")
        headers[key] = value
    return Response(
        url=URL(),
        status=int(code),
        reason=reason.strip().encode("latin-1").decode("utf-8", "replace"),
        version=version[5:],
        headers=headers,
    )


def _body_reader(head: Response, limit: int, keep: bytearray | None) -> _BodyReader:
    if head.status in _NO_BODY_STATUSES or head.status == 101:
        return _BodyReader(limit, keep, length=0)
    encoding = head.headers.get("transfer-encoding")
    if encoding is not None:
        chunked = encoding.rsplit(",", 1)[-1].strip().lower() == "chunked"
        return _ChunkedReader(limit, keep) if chunked else _BodyReader(limit, keep, length=None)
    length = head.headers.get("content-length")
    if length is None:
        return _BodyReader(limit, keep, length=None)
    if not length.isdigit():
        raise ProtocolError(f"invalid Content-Length {length[:40]!r}")
    return _BodyReader(limit, keep, length=int(length))


class _BodyReader:
    """Counts a body's bytes (keeping them when asked) up to ``limit``.

    ``length`` None: the body ends when the server closes the connection.
    """

    def __init__(self, limit: int, keep: bytearray | None, length: int | None) -> None:
        self.read = 0
        self._limit = limit
        self._keep = keep
        self._left = length

    @property
    def ends_with_close(self) -> bool:
        return self._left is None

    def feed(self, data: bytes) -> bool:
        """Take ``data``; True once the body is complete or the limit is reached."""
        if self._left is not None:
            data = data[: self._left]
            self._left -= len(data)
        self._take(data)
        return self._left == 0 or self.read >= self._limit

    def _take(self, data: bytes) -> None:
        room = self._limit - self.read
        if room <= 0 or not data:
            return
        piece = data[:room]
        self.read += len(piece)
        if self._keep is not None:
            self._keep += piece


class _ChunkedReader(_BodyReader):
    """A ``Transfer-Encoding: chunked`` body: sizes, data, CRLFs, trailers."""

    def __init__(self, limit: int, keep: bytearray | None) -> None:
        super().__init__(limit, keep, length=None)
        self._line = bytearray()
        self._chunk_left = 0
        self._state = "size"

    @property
    def ends_with_close(self) -> bool:
        return False

    def feed(self, data: bytes) -> bool:
        pos, end = 0, len(data)
        while pos < end:
            if self._state == "data":
                piece = data[pos : pos + self._chunk_left]
                self._take(piece)
                self._chunk_left -= len(piece)
                pos += len(piece)
                if self._chunk_left == 0:
                    self._state = "data-end"
            else:
                newline = data.find(b"\n", pos)
                if newline < 0:
                    self._line += data[pos:]
                    if len(self._line) > MAX_LINE:
                        raise ProtocolError(f"chunk line longer than {MAX_LINE} bytes")
                    break
                self._line += data[pos:newline]
                pos = newline + 1
                if self._end_of_line():
                    return True
            if self.read >= self._limit:
                return True
        return self.read >= self._limit

    def _end_of_line(self) -> bool:
        """Act on a complete size, data-end or trailer line; True at the end of the body."""
        line = bytes(self._line).rstrip(b"\r")
        self._line.clear()
        if len(line) > MAX_LINE:
            raise ProtocolError(f"chunk line longer than {MAX_LINE} bytes")
        if self._state == "size":
            self._chunk_left = _chunk_size(line)
            self._state = "data" if self._chunk_left else "trailer"
        elif self._state == "data-end":
            if line:
                raise ProtocolError("chunk data longer than its size")
            self._state = "size"
        elif not line:  # the blank line after the trailers
            return True
        return False


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].strip()
    if _HEX.fullmatch(size) is None:
        raise ProtocolError(f"invalid chunk size {line[:40]!r}")
    return int(size, 16)
