"""An authoritative DNS server for tests, with per-name behaviour we control.

It answers over UDP and TCP on loopback. A name maps to a behaviour: records to answer
(addresses, an alias, MX/TXT/…), an rcode to return, silence, a late answer, or a broken one
(bytes that are not DNS, a cut-off message, a truncated UDP answer that only TCP completes),
so the probe's every outcome class can be produced by a real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

#: What a "garbage" name answers: not a DNS message.
GARBAGE = b"\x00\x01this is not a DNS message"


@dataclass
class Answer:
    """What the server does for one name."""

    a: list[str] = field(default_factory=list)
    aaaa: list[str] = field(default_factory=list)
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    silent: bool = False
    #: The name is an alias: answer a CNAME, then the target's records when it is in the zone.
    cname: str | None = None
    #: Other types in zone-file text, e.g. {"MX": ["10 mail.example.test."]}.
    records: dict[str, list[str]] = field(default_factory=dict)
    ttl: int = 60
    #: Seconds to wait before answering (longer than the probe's timeout: a slow server).
    delay: float = 0.0
    #: Answer with bytes that are not DNS.
    garbage: bool = False
    #: Answer with only the first half of a valid message.
    cut: bool = False
    #: Over UDP, answer nothing but the TC flag; the full answer comes over TCP.
    truncated_udp: bool = False

    def rdatas(self, rdtype: dns.rdatatype.RdataType) -> list[str]:
        if rdtype == dns.rdatatype.A:
            return self.a
        if rdtype == dns.rdatatype.AAAA:
            return self.aaaa
        return self.records.get(dns.rdatatype.to_text(rdtype), [])


class DnsServer:
    def __init__(self, zone: dict[str, Answer]) -> None:
        self.zone = {name.rstrip(".").lower(): answer for name, answer in zone.items()}
        self.port = 0
        self.queries = 0
        #: Client addresses of UDP queries: (host, port).
        self.sources: set[tuple[str, int]] = set()
        self._transport: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def lookup(self, wire: bytes) -> tuple[Answer | None, bytes | None]:
        """The zone entry asked about and the reply to send (None: say nothing)."""
        self.queries += 1
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None, None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        answer = self.zone.get(question.name.to_text().rstrip(".").lower())
        if answer is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return None, response.to_wire()
        if answer.silent:
            return answer, None
        if answer.garbage:
            return answer, GARBAGE
        response.set_rcode(answer.rcode)
        if answer.rcode == dns.rcode.NOERROR:
            self._fill(response, question.name, question.rdtype, answer)
        reply = response.to_wire()
        return answer, reply[: len(reply) // 2] if answer.cut else reply

    def _fill(
        self,
        response: dns.message.Message,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        answer: Answer,
    ) -> None:
        if answer.cname is not None:
            target = dns.name.from_text(answer.cname)
            response.answer.append(
                dns.rrset.from_text_list(
                    name, answer.ttl, dns.rdataclass.IN, dns.rdatatype.CNAME, [answer.cname]
                )
            )
            aliased = self.zone.get(answer.cname.rstrip(".").lower())
            if aliased is None or rdtype == dns.rdatatype.CNAME:
                return
            name, answer = target, aliased
        values = answer.rdatas(rdtype)
        if values:
            response.answer.append(
                dns.rrset.from_text_list(name, answer.ttl, dns.rdataclass.IN, rdtype, values)
            )

    async def start(self, host: str = "127.0.0.1") -> None:
        loop = asyncio.get_running_loop()
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                server.sources.add(addr)
                answer, reply = server.lookup(data)
                if reply is None:
                    return
                if answer is not None and answer.truncated_udp:
                    reply = _truncated(data)
                if answer is not None and answer.delay:
                    loop.call_later(answer.delay, self.transport.sendto, reply, addr)
                else:
                    self.transport.sendto(reply, addr)

        async def tcp_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
                answer, reply = server.lookup(await reader.readexactly(length))
                if reply is not None:
                    if answer is not None and answer.delay:
                        await asyncio.sleep(answer.delay)
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self._transport, self._tcp, self.port = await serve_udp_and_tcp(Udp, tcp_client, host)

    async def stop(self) -> None:
        await close_udp_and_tcp(self._transport, self._tcp)


async def serve_udp_and_tcp(
    udp: Callable[[], asyncio.DatagramProtocol],
    tcp_client: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    host: str,
) -> tuple[asyncio.DatagramTransport, asyncio.Server, int]:
    """A DNS server's UDP and TCP listeners on one free port (the transport, the TCP server,
    the port). A free UDP port may be taken for TCP, so it tries again."""
    loop = asyncio.get_running_loop()
    for _ in range(50):
        transport, _ = await loop.create_datagram_endpoint(udp, local_addr=(host, 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(tcp_client, host, port)
        except OSError as exc:
            transport.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        return transport, tcp, port
    raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP")


async def close_udp_and_tcp(
    transport: asyncio.DatagramTransport | None, tcp: asyncio.Server | None
) -> None:
    """Close both listeners; a TCP client that never hangs up holds the close for 5 s at most."""
    if transport is not None:
        transport.close()
    if tcp is not None:
        tcp.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tcp.wait_closed(), 5)


def _truncated(wire: bytes) -> bytes:
    """An empty answer with TC set: the client must ask again over TCP."""
    response = dns.message.make_response(dns.message.from_wire(wire))
    response.flags |= dns.flags.AA | dns.flags.TC
    return response.to_wire()
