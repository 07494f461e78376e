"""Targets that misbehave on purpose, on loopback: what a monitor meets in the wild.

Each TCP server speaks just enough (or too much) of HTTP or TLS to hold a check: one accepts
and never answers, one trickles a byte a second, one sends a body without end, one redirects
to itself forever, one sends a 10 MB header, one stalls the TLS handshake. A DNS server on UDP
and TCP answers most names normally and some with garbage or a truncated answer whose TCP
retry then stalls or is garbage.

Big answers are streamed in chunks with back-pressure, so a thousand checks against them cost
the server little memory: what is measured is the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tests.support.dns_server import close_udp_and_tcp, serve_udp_and_tcp

LOOPBACK = "127.0.0.1"
#: The size of the header line the "huge header" target sends.
HUGE_HEADER_BYTES = 10 * 1024 * 1024
_CHUNK = 64 * 1024
#: The nameserver's UDP receive buffer (see _widen_receive_buffer).
RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024

#: First labels of names the hostile DNS server mistreats; any other name is 127.0.0.1.
DNS_GARBAGE = "garbage"
DNS_TC_STALL = "tc-stall"
DNS_TC_GARBAGE = "tc-garbage"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _hold(reader: asyncio.StreamReader) -> None:
    """Keep the connection open until the client goes: read and ignore what it sends."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(_CHUNK):
            pass


async def _never_answer(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
    await _hold(reader)


async def _trickle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A status line and headers one byte a second: never a complete response in time."""
    message = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Slow: " + b"s" * 4096
    for byte in message:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1)


async def _stream(
    writer: asyncio.StreamWriter, head: bytes, chunk: bytes, total: int | None
) -> None:
    """``head``, then ``chunk`` repeated up to ``total`` bytes (None: forever), with drain."""
    writer.write(head)
    sent = 0
    while total is None or sent < total:
        writer.write(chunk)
        sent += len(chunk)
        await writer.drain()


async def _endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
    await _stream(writer, head, b"\xff" * _CHUNK, None)


async def _huge_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await _stream(writer, b"HTTP/1.1 200 OK\r\nX-Huge: ", b"h" * _CHUNK, HUGE_HEADER_BYTES)
    writer.write(b"\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


async def _redirect_loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every request (keep-alive or not) is sent to the same URL again."""
    while await reader.readuntil(b"\r\n\r\n"):
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()


def _guarded(handler: Handler) -> Handler:
    """A handler whose client going away (the point of most of these) ends it quietly."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # the servers' loop is closing: not an error worth a traceback
        finally:
            writer.transport.abort()

    return run


#: kind -> handler; the TLS stall is a server that never answers the ClientHello.
HTTP_KINDS: dict[str, Handler] = {
    "hang": _never_answer,
    "trickle": _trickle,
    "endless": _endless_body,
    "huge-header": _huge_header,
    "redirect-loop": _redirect_loop,
    "tls-stall": _never_answer,
}


def _garbage_for(query: bytes) -> bytes:
    """The query's id, then bytes that are no DNS message: it passes the id check, then fails."""
    return query[:2] + b"\x81\x80\x00\x01\x00\x01" + os.urandom(40)


def _answer(query: dns.message.Message) -> bytes:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    question = query.question[0]
    if question.rdtype == dns.rdatatype.A:
        response.answer.append(
            dns.rrset.from_text_list(
                question.name, 60, dns.rdataclass.IN, dns.rdatatype.A, [LOOPBACK]
            )
        )
    return response.to_wire()


def _truncated(query: dns.message.Message) -> bytes:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA | dns.flags.TC
    return response.to_wire()


def _kind_of(query: dns.message.Message) -> str:
    labels = query.question[0].name.labels
    return labels[0].decode("ascii", "replace") if labels else ""


def _widen_receive_buffer(sock: socket.socket) -> None:
    """A bigger UDP receive buffer: a cycle's burst of queries (two per check, 200 checks at
    once) overflows the default one, and the kernel drops queries, which the probe would
    rightly report as timeouts of names that are fine. Over the limit needs root."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER_BYTES)
            return


class HostileDns:
    """UDP and TCP on one loopback port; the first label of a name (``KIND.N.hostile.test``)
    picks the behaviour."""

    def __init__(self) -> None:
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def udp_reply(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        kind = _kind_of(query)
        if kind == DNS_GARBAGE:
            return _garbage_for(wire)
        if kind in (DNS_TC_STALL, DNS_TC_GARBAGE):
            return _truncated(query)
        return _answer(query)

    async def tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            length = struct.unpack("!H", await reader.readexactly(2))[0]
            wire = await reader.readexactly(length)
            query = dns.message.from_wire(wire)
            kind = _kind_of(query)
            if kind == DNS_TC_STALL:
                await _hold(reader)
                return
            reply = _garbage_for(wire) if kind in (DNS_GARBAGE, DNS_TC_GARBAGE) else _answer(query)
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, dns.exception.DNSException):
            pass
        finally:
            writer.transport.abort()

    async def start(self) -> None:
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                reply = server.udp_reply(data)
                if reply is not None:
                    self.transport.sendto(reply, addr)

        transport, self._tcp, self.port = await serve_udp_and_tcp(Udp, self.tcp_client, LOOPBACK)
        _widen_receive_buffer(transport.get_extra_info("socket"))
        self._transport = transport

    async def stop(self) -> None:
        await close_udp_and_tcp(self._transport, self._tcp)


@dataclass
class Hostile:
    """Where each hostile target listens.

    The DNS server is best run on a loop of its own, so that its answers never wait behind
    the streaming targets (a late answer would turn a good name into a DNS timeout).
    """

    dns: HostileDns
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def resolver(self) -> str:
        return f"{LOOPBACK}:{self.dns.port}"

    def url(self, kind: str, domain: str) -> str:
        """The URL a site of ``kind`` is checked at (``domain`` resolves to loopback)."""
        if kind == "tls-stall":
            return f"https://{domain}:{self.ports[kind]}/"
        if kind.startswith(("garbage", "tc-")):
            return f"http://{domain}/"  # never fetched: its DNS fails first
        return f"http://{domain}:{self.ports[kind]}/loop"


#: kind -> the error class a check of it must end with (``CheckResult.error_class``).
EXPECTED_CLASS = {
    "hang": "http_timeout",
    "trickle": "http_timeout",
    "endless": "",  # read up to the body limit, then judged: up
    "huge-header": "http_error",
    "redirect-loop": "http_too_many_redirects",
    "tls-stall": "http_timeout",
    DNS_GARBAGE: "dns_error",
    DNS_TC_STALL: "dns_timeout",
    DNS_TC_GARBAGE: "dns_error",
}


async def start_hostile_http() -> tuple[dict[str, int], Callable[[], Coroutine[Any, Any, None]]]:
    """Start every hostile TCP server on loopback; returns kind -> port, and the stopper."""
    servers: list[asyncio.Server] = []
    ports = {}
    for kind, handler in HTTP_KINDS.items():
        server = await asyncio.start_server(_guarded(handler), LOOPBACK, 0)
        servers.append(server)
        ports[kind] = int(server.sockets[0].getsockname()[1])

    async def stop() -> None:
        for server in servers:
            server.close()
        for server in servers:
            # Python 3.12+ waits for open connections too; the hostile ones end with the loop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2)

    return ports, stop
