"""An authoritative DNS server for tests, with per-name behaviour we control.

It answers over UDP and TCP on loopback. A name maps to a behaviour: addresses to answer,
an rcode to return, or silence (never answer), so the probe's every outcome class can be
produced by a real server.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from typing import cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


@dataclass
class Answer:
    """What the server does for one name."""

    a: list[str] = field(default_factory=list)
    aaaa: list[str] = field(default_factory=list)
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    silent: bool = False


class DnsServer:
    def __init__(self, zone: dict[str, Answer]) -> None:
        self.zone = {name.rstrip(".").lower(): answer for name, answer in zone.items()}
        self.port = 0
        self.queries = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def respond(self, wire: bytes) -> bytes | None:
        self.queries += 1
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        answer = self.zone.get(name)
        if answer is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        if answer.silent:
            return None
        response.set_rcode(answer.rcode)
        addresses = {dns.rdatatype.A: answer.a, dns.rdatatype.AAAA: answer.aaaa}.get(
            question.rdtype, []
        )
        if answer.rcode == dns.rcode.NOERROR and addresses:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, 60, dns.rdataclass.IN, question.rdtype, addresses
                )
            )
        return response.to_wire()

    async def start(self, host: str = "127.0.0.1") -> None:
        loop = asyncio.get_running_loop()
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                reply = server.respond(data)
                if reply is not None:
                    self.transport.sendto(reply, addr)

        transport, _ = await loop.create_datagram_endpoint(Udp, local_addr=(host, 0))
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]

        async def tcp_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = server.respond(await reader.readexactly(length))
                if reply is not None:
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self._tcp = await asyncio.start_server(tcp_client, host, self.port)

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
