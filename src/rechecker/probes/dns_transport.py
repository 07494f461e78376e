"""DNS queries for the DNS probe: long-lived UDP sockets per nameserver, TCP on truncation.

Why not ``dns.asyncquery``: it opens a socket per query and builds and parses full
``dns.message.Message`` objects. With two queries per check (A and AAAA), that was over a
third of the CPU of a check cycle (docs/benchmarks.md). Here queries to one nameserver share
connected UDP sockets and are matched to replies by ID and question; the wire format is
written and read directly for the address records every check asks for (A, AAAA and the
CNAMEs in front of them), and dnspython still parses any message holding another type.

At most :data:`IN_FLIGHT_PER_SOCKET` queries share a socket, so that a burst of replies
fits its receive buffer. What is kept from a socket per query: a reply is accepted only from
the nameserver the socket is connected to, with the query's ID and the same question (name
case-insensitively, type, class), and a socket, hence its source port, is replaced after
:data:`QUERIES_PER_SOCKET` queries. A malformed reply with a pending query's ID fails that
query; datagrams matching no pending query are ignored.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import dns.exception
import dns.message
import dns.name

from rechecker.results import DnsRecord

#: A socket (and so its source port) is retired after this many queries.
QUERIES_PER_SOCKET = 4096
#: Queries in flight on one socket; more open another socket. Their replies must fit the
#: socket's receive buffer while the worker is busy: the kernel drops what does not, and a
#: drop looks like a timeout (with 400 in flight on one socket, 186 were dropped).
IN_FLIGHT_PER_SOCKET = 64
#: Receive buffer asked for each socket (the kernel caps it at net.core.rmem_max).
RECEIVE_BUFFER = 1 * 2**20

CNAME = 5
A = 1
AAAA = 28
_CLASS_IN = 1
_FLAG_RESPONSE = 0x8000
_FLAG_TRUNCATED = 0x0200
_FLAG_RECURSION_DESIRED = 0x0100
_HEADER = struct.Struct("!6H")
_RR_FIXED = struct.Struct("!HHIH")
_QUESTION_TAIL = struct.Struct("!HH")
# Bytes dnspython escapes in presentation format; kept identical so that stored CNAMEs do
# not change with the transport.
_ESCAPED = frozenset(b'"().;\\@$')


class DnsTransportError(Exception):
    """A reply that cannot be read, or a transport failure; the message says which."""


@dataclass(slots=True)
class Answer:
    """A nameserver's reply: its response code and the answer section, by record type."""

    rcode: int
    records: dict[int, list[DnsRecord]] = field(default_factory=dict)
    #: The UDP reply did not fit: ask again over TCP (the records are not read).
    truncated: bool = False


def encode_name(domain: str) -> bytes:
    """The wire form of ``domain`` (a normalised LDH name, or anything dnspython accepts)."""
    text = domain.rstrip(".")
    if text.isascii() and "\\" not in text:
        labels = text.encode().split(b".") if text else []
        if all(0 < len(label) <= 63 for label in labels):
            wire = b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
            if len(wire) <= 255:
                return wire
    try:
        converted = dns.name.from_text(domain).to_wire()
    except dns.exception.DNSException as exc:
        raise DnsTransportError(f"invalid name: {exc}") from exc
    assert converted is not None  # to_wire() without a file returns the bytes
    return converted


def _query(query_id: int, qname: bytes, rdtype: int) -> bytes:
    return (
        _HEADER.pack(query_id, _FLAG_RECURSION_DESIRED, 1, 0, 0, 0)
        + qname
        + _QUESTION_TAIL.pack(rdtype, _CLASS_IN)
    )


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length == 0:
            return offset + 1
        if length >= 0xC0:
            return offset + 2
        offset += length + 1


def _read_name(data: bytes, offset: int) -> str:
    """A possibly compressed name as dnspython writes it (absolute, escaped)."""
    labels: list[str] = []
    jumps = 0
    while True:
        length = data[offset]
        if length >= 0xC0:
            jumps += 1
            if jumps > 64:
                raise DnsTransportError("compression loop in a name")
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length == 0:
            break
        if length > 63:
            raise DnsTransportError("bad label length")
        label = data[offset + 1 : offset + 1 + length]
        if len(label) != length:
            raise DnsTransportError("name runs past the message")
        labels.append(_presentation(label))
        offset += length + 1
    return ".".join(labels) + "."


def _presentation(label: bytes) -> str:
    if label.isalnum() or all(0x20 < b < 0x7F and b not in _ESCAPED for b in label):
        return label.decode()
    return "".join(
        "\\" + chr(b) if b in _ESCAPED else chr(b) if 0x20 < b < 0x7F else f"\\{b:03d}"
        for b in label
    )


def parse_reply(data: bytes, query_id: int, qname: bytes, rdtype: int) -> Answer | None:
    """The reply to the query (``query_id``, ``qname``, ``rdtype``), or None when ``data``
    answers another question; raises DnsTransportError for a malformed message."""
    try:
        reply_id, flags, questions, answers, _, _ = _HEADER.unpack_from(data)
        if reply_id != query_id or not flags & _FLAG_RESPONSE or questions != 1:
            return None
        end = 12 + len(qname)
        if data[12:end].lower() != qname.lower():
            return None
        if _QUESTION_TAIL.unpack_from(data, end) != (rdtype, _CLASS_IN):
            return None
        answer = Answer(rcode=flags & 0xF, truncated=bool(flags & _FLAG_TRUNCATED))
        if answer.truncated:
            return answer
        offset = end + 4
        for _ in range(answers):
            offset = _skip_name(data, offset)
            rrtype, rrclass, ttl, length = _RR_FIXED.unpack_from(data, offset)
            offset += 10
            if offset + length > len(data):
                raise DnsTransportError("record runs past the message")
            if rrclass != _CLASS_IN or rrtype not in (A, AAAA, CNAME):
                return _parse_fully(data)
            if rrtype == A and length == 4:
                value = socket.inet_ntop(socket.AF_INET, data[offset : offset + 4])
            elif rrtype == AAAA and length == 16:
                value = socket.inet_ntop(socket.AF_INET6, data[offset : offset + 16])
            elif rrtype == CNAME:
                value = _read_name(data, offset)
            else:
                raise DnsTransportError(f"bad length {length} of a type {rrtype} record")
            _add(answer.records.setdefault(rrtype, []), value, ttl, rrtype)
            offset += length
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise DnsTransportError(f"malformed reply: {type(exc).__name__}: {exc}") from exc
    return answer


def _add(records: list[DnsRecord], value: str, ttl: int, rrtype: int) -> None:
    """One rdata once; an address set's TTL is its smallest, as dnspython's rrsets have it."""
    if rrtype != CNAME and records and ttl < records[0].ttl:
        for record in records:
            record.ttl = ttl
    elif rrtype != CNAME and records:
        ttl = records[0].ttl
    if all(record.value != value for record in records):
        records.append(DnsRecord(value=value, ttl=ttl))


def _parse_fully(data: bytes) -> Answer:
    """Any other record type: dnspython reads the message and writes the presentation."""
    try:
        message = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError) as exc:
        raise DnsTransportError(f"malformed reply: {type(exc).__name__}: {exc}") from exc
    answer = Answer(rcode=message.rcode())
    for rrset in message.answer:
        known = answer.records.setdefault(int(rrset.rdtype), [])
        for rdata in rrset:
            record = DnsRecord(value=rdata.to_text(), ttl=rrset.ttl)
            if record not in known:
                known.append(record)
    return answer


@dataclass(slots=True)
class _Pending:
    qname: bytes
    rdtype: int
    future: asyncio.Future[bytes]


class _Channel(asyncio.DatagramProtocol):
    """One connected UDP socket to one nameserver, shared by the queries in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, _Pending] = {}
        self.sent = 0
        self.closed = False
        #: Datagrams that are not DNS replies, and why the last one is not.
        self.unreadable = 0
        self.unreadable_reason = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: object) -> None:
        pending = self.pending.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
        if pending is not None and not pending.future.done():
            pending.future.set_result(data)
        elif len(data) < 12 or not data[2] & 0x80 or data[4:6] != b"\x00\x01":
            # Not a late reply to a query given up on: the nameserver speaks garbage. Which
            # query it meant cannot be known; those that time out say so instead.
            self.unreadable += 1
            self.unreadable_reason = f"{len(data)}-byte datagram that is not a DNS reply"

    def error_received(self, exc: Exception) -> None:
        # On a connected socket this is an ICMP error from the nameserver (port unreachable):
        # every query in flight on it went there, so every one of them failed.
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc or ConnectionError("DNS socket closed"))

    def send(self, qname: bytes, rdtype: int) -> tuple[int, asyncio.Future[bytes]]:
        assert self.transport is not None
        query_id = _random_id()
        while query_id in self.pending:
            query_id = _random_id()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pending[query_id] = _Pending(qname, rdtype, future)
        self.sent += 1
        self.transport.sendto(_query(query_id, qname, rdtype))
        return query_id, future

    def forget(self, query_id: int) -> None:
        self.pending.pop(query_id, None)
        if self.retired and not self.pending and self.transport is not None:
            self.transport.close()

    @property
    def retired(self) -> bool:
        return self.sent >= QUERIES_PER_SOCKET or self.closed


class DnsTransport:
    """The sockets of one worker, by nameserver; close with :meth:`close`."""

    def __init__(self) -> None:
        self._channels: dict[tuple[str, int], list[_Channel]] = {}
        self._opening: dict[tuple[str, int], asyncio.Future[_Channel]] = {}

    async def _channel(self, host: str, port: int, queries: int) -> _Channel:
        """A socket to the nameserver with room for ``queries`` more in flight: an open one,
        else a new one (one at a time per nameserver, so a burst does not open dozens)."""
        key = (host, port)
        channels = self._channels.setdefault(key, [])
        while True:
            channels[:] = [c for c in channels if c.pending or not c.retired]
            for channel in channels:
                if not channel.retired and len(channel.pending) + queries <= IN_FLIGHT_PER_SOCKET:
                    return channel
            opening = self._opening.get(key)
            if opening is None:
                break
            await asyncio.shield(opening)
        loop = asyncio.get_running_loop()
        self._opening[key] = future = loop.create_future()
        try:
            _, channel = await loop.create_datagram_endpoint(_Channel, sock=_socket(host, port))
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: the waiters, if any, get it too
            raise
        finally:
            del self._opening[key]
        future.set_result(channel)
        channels.append(channel)
        return channel

    async def ask(
        self, host: str, port: int, qname: bytes, rdtypes: Sequence[int], budget_s: float
    ) -> list[Answer | Exception]:
        """One query per record type, sent together; per type, within ``budget_s``, the
        answer or what went wrong (TimeoutError, DnsTransportError, OSError). Truncated
        replies are asked again over TCP in the time left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_s
        try:
            async with asyncio.timeout_at(deadline):
                channel = await self._channel(host, port, len(rdtypes))
        except OSError as exc:
            return [exc for _ in rdtypes]
        unreadable = channel.unreadable
        sent = [channel.send(qname, rdtype) for rdtype in rdtypes]
        expiry = loop.call_at(deadline, _expire, [future for _, future in sent])
        try:
            results = [
                await _answer(future, query_id, qname, rdtype, (host, port), deadline)
                for (query_id, future), rdtype in zip(sent, rdtypes, strict=True)
            ]
            if channel.unreadable > unreadable:
                unanswered = DnsTransportError(f"malformed reply: {channel.unreadable_reason}")
                results = [unanswered if isinstance(r, TimeoutError) else r for r in results]
            return results
        finally:
            expiry.cancel()
            for query_id, future in sent:
                _discard(future)
                channel.forget(query_id)

    async def close(self) -> None:
        for channels in self._channels.values():
            for channel in channels:
                if channel.transport is not None:
                    channel.transport.close()
        self._channels.clear()


def _socket(host: str, port: int) -> socket.socket:
    """A UDP socket connected to the nameserver, with room for a burst of replies (where
    the kernel allows more than its default of ~200 KiB)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setblocking(False)
        sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _random_id() -> int:
    return int.from_bytes(os.urandom(2), "big")


def _expire(futures: list[asyncio.Future[bytes]]) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(TimeoutError())


def _discard(future: asyncio.Future[bytes]) -> None:
    """Cancel an unanswered query; mark a failure nobody awaited as seen."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()


async def _answer(
    future: asyncio.Future[bytes],
    query_id: int,
    qname: bytes,
    rdtype: int,
    server: tuple[str, int],
    deadline: float,
) -> Answer | Exception:
    try:
        data = await future
        answer = parse_reply(data, query_id, qname, rdtype)
        if answer is None:
            # A reply with our ID to another question: the nameserver is confused or someone
            # is guessing IDs. Either way the answer cannot be trusted.
            raise DnsTransportError("reply to a different question")
        if answer.truncated:
            async with asyncio.timeout_at(deadline):
                return await _ask_tcp(*server, qname, rdtype)
        return answer
    except (DnsTransportError, OSError) as exc:
        return exc


async def _ask_tcp(host: str, port: int, qname: bytes, rdtype: int) -> Answer:
    """The same question over TCP (RFC 7766), after a truncated UDP reply."""
    query_id = _random_id()
    query = _query(query_id, qname, rdtype)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(len(query).to_bytes(2, "big") + query)
        length = int.from_bytes(await reader.readexactly(2), "big")
        data = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise DnsTransportError("TCP reply cut short") from exc
    finally:
        writer.close()
    answer = parse_reply(data, query_id, qname, rdtype)
    if answer is None:
        raise DnsTransportError("TCP reply to a different question")
    return answer
