"""The SSRF guard of on-demand checks: what an API caller may make the core connect to.

``POST /http|/check|/dns/{domain}`` checks any name a caller gives. Without a guard, a caller
could point the core at the cloud metadata service, at a database port on loopback or at an
intranet host, and read the outcome. While :func:`guarding` is active (only for on-demand
checks of names that are not monitored), every address the probes would use is checked
before anything connects to it:

* :func:`admit` is called by ``ProbeContext.resolve()`` — the one place the HTTP probe, its
  redirects and the TLS diagnosis get addresses for a name;
* :func:`guarded_socket` makes every socket the HTTP client connects: an IP literal
  (``Location: http://169.254.169.254/``) is not resolved, so the socket about to connect
  to it is checked too.

Scheduled checks of the inventory run without a guard: the inventory is trusted to name
internal sites. A refused address raises :class:`RefusedAddressError` (an ``OSError``, so a
probe ends like any connection failure) and is recorded on the guard, which the API turns into
a 403.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from aiohappyeyeballs import AddrInfoType

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Cloud metadata and platform services. They stay refused even inside an allowed network;
#: only an allow-list entry naming exactly the address (a /32 or /128) opens one.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean… instance metadata
        "169.254.169.253",  # AWS VPC DNS
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.169.123",  # AWS time sync
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::253",  # AWS VPC DNS over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure WireServer (a public address, reachable only inside Azure)
        "192.0.0.192",  # Oracle Cloud metadata
    )
)

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def classify(address: IPAddress) -> str | None:
    """Why an address may not be reached by on-demand checks, or None when it is public."""
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = classify(embedded)
            return f"{reason} (IPv4 {embedded} inside IPv6)" if reason else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("carrier-grade NAT", address in _CGNAT),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, Teredo client), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]
    return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """The allow-list: networks any name may reach, and names whose addresses are all fine."""

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> AddressPolicy:
        """Entries as validated by the settings: CIDRs or single addresses, names, ``*.zone``."""
        networks: list[IPNetwork] = []
        names: set[str] = set()
        suffixes: list[str] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if entry.startswith("*."):
                    suffixes.append(entry[1:])
                else:
                    names.add(entry)
        return cls(tuple(networks), frozenset(names), tuple(suffixes))

    def name_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.names or host.endswith(self.suffixes)

    def refusal(self, address: str) -> str | None:
        """Why ``address`` is refused under this policy, or None when it may be reached."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return "not an IP address"
        reason = classify(ip)
        if reason is None:
            return None
        if reason == "cloud metadata":
            exact = any(n.num_addresses == 1 and ip in n for n in self.networks)
            return None if exact else reason
        return None if any(ip in network for network in self.networks) else reason


@dataclass(frozen=True, slots=True)
class Refusal:
    host: str
    address: str
    reason: str


class RefusedAddressError(OSError):
    """An on-demand check would have connected to an address the guard refuses."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.host} resolves to a {refusal.reason} address (refused)")
        self.refusal = refusal


@dataclass(slots=True)
class Guard:
    """One on-demand request's guard: its policy, its tickets and what it refused."""

    policy: AddressPolicy
    #: One ticket per address an allow-listed name resolved to: the socket check lets one
    #: connection to it through. A ticket, not a standing approval, so that a redirect to the
    #: same address as an IP literal is judged by the networks of the allow-list alone.
    tickets: Counter[str] = field(default_factory=Counter)
    refused: list[Refusal] = field(default_factory=list)

    def inspect(self, host: str, addresses: Sequence[str]) -> list[Refusal]:
        """Check every address of ``host``; record and return the refused ones."""
        if self.policy.name_allowed(host):
            self.tickets.update(addresses)
            return []
        found = [
            Refusal(host, address, reason)
            for address in addresses
            if (reason := self.policy.refusal(address)) is not None
        ]
        for refusal in found:
            log.warning(
                "on-demand check refused: %s is %s, a %s address",
                refusal.host,
                refusal.address,
                refusal.reason,
                extra={"ssrf.host": refusal.host, "ssrf.address": refusal.address},
            )
        self.refused.extend(found)
        return found

    def admit(self, host: str, addresses: Sequence[str]) -> None:
        """Raise for ``host`` when any of its addresses is refused: none of them is used."""
        found = self.inspect(host, addresses)
        if found:
            raise RefusedAddressError(found[0])


_active: ContextVar[Guard | None] = ContextVar("rechecker_ssrf_guard", default=None)


@contextmanager
def guarding(policy: AddressPolicy) -> Iterator[Guard]:
    """Guard every connection the probes make inside the block (and tasks it starts)."""
    guard = Guard(policy)
    token = _active.set(guard)
    try:
        yield guard
    finally:
        _active.reset(token)


def admit(host: str, addresses: list[str]) -> list[str]:
    """``addresses`` of ``host`` when no guard is active or all may be reached; else raise
    :class:`RefusedAddressError`. Called by ``ProbeContext.resolve()``."""
    guard = _active.get()
    if guard is not None:
        guard.admit(host, addresses)
    return addresses


def guarded_socket(addr_info: AddrInfoType) -> socket.socket:
    """The HTTP client's socket factory: under a guard, checks the address about to be
    connected — IP literals are connected to without resolving — unless a name on the
    allow-list just resolved to it."""
    family, type_, proto, _, sockaddr = addr_info
    guard = _active.get()
    if guard is not None:
        address = str(sockaddr[0])
        if guard.tickets[address] > 0:
            guard.tickets[address] -= 1
        else:
            guard.admit(address, [address])
    return socket.socket(family=family, type=type_, proto=proto)
