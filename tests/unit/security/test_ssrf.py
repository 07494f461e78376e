"""The SSRF guard's address rules and allow-list, address by address."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from rechecker.security import ssrf
from rechecker.security.settings import ApiSettings

#: Every class of address an on-demand check of an unknown name must not reach.
REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fd12:3456::1": "private",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "100.64.0.1": "carrier-grade NAT",
    "100.127.255.254": "carrier-grade NAT",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "192.0.2.10": "private",  # documentation (TEST-NET-1)
    "198.18.0.1": "private",  # benchmarking
    "169.254.169.254": "cloud metadata",
    "169.254.170.2": "cloud metadata",
    "fd00:ec2::254": "cloud metadata",
    "100.100.100.200": "cloud metadata",
    "168.63.129.16": "cloud metadata",
    "::ffff:127.0.0.1": "loopback (IPv4 127.0.0.1 inside IPv6)",
    "::ffff:169.254.169.254": "cloud metadata (IPv4 169.254.169.254 inside IPv6)",
    "64:ff9b::a00:1": "private (IPv4 10.0.0.1 inside IPv6)",
    "2002:c0a8:101::1": "private (IPv4 192.168.1.1 inside IPv6)",
}

PUBLIC = ["93.184.215.14", "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001::200e"]


@pytest.mark.parametrize(("address", "reason"), sorted(REFUSED.items()))
def test_internal_addresses_are_refused_with_their_class(address: str, reason: str) -> None:
    assert ssrf.classify(ipaddress.ip_address(address)) == reason
    assert ssrf.AddressPolicy().refusal(address) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert ssrf.AddressPolicy().refusal(address) is None


def policy(*entries: str) -> ssrf.AddressPolicy:
    return ssrf.AddressPolicy.from_entries(ApiSettings(ssrf_allow=list(entries)).ssrf_allow)


def test_an_allowed_network_opens_its_addresses_only() -> None:
    allowed = policy("10.0.0.0/8", "fd00::/8")
    assert allowed.refusal("10.20.30.40") is None
    assert allowed.refusal("fd00::5") is None
    assert allowed.refusal("192.168.0.1") == "private"
    assert allowed.refusal("127.0.0.1") == "loopback"


def test_metadata_needs_its_exact_address_on_the_allow_list() -> None:
    assert policy("169.254.0.0/16").refusal("169.254.169.254") == "cloud metadata"
    assert policy("0.0.0.0/0").refusal("169.254.169.254") == "cloud metadata"
    assert policy("fd00::/8").refusal("fd00:ec2::254") == "cloud metadata"
    assert policy("169.254.169.254").refusal("169.254.169.254") is None
    assert policy("169.254.0.0/16").refusal("169.254.1.1") is None


def test_allowed_names_and_zones() -> None:
    allowed = policy("Intranet.Example.", "*.corp.example")
    assert allowed.name_allowed("intranet.example")
    assert allowed.name_allowed("wiki.corp.example")
    assert allowed.name_allowed("a.b.corp.example")
    assert not allowed.name_allowed("corp.example")
    assert not allowed.name_allowed("evilcorp.example")
    assert not allowed.name_allowed("intranet.example.evil.test")


def test_a_name_with_one_internal_address_is_refused_whole() -> None:
    with ssrf.guarding(ssrf.AddressPolicy()) as guard, pytest.raises(ssrf.RefusedAddressError):
        ssrf.admit("mixed.example", ["93.184.215.14", "10.0.0.1"])
    assert [(r.host, r.address, r.reason) for r in guard.refused] == [
        ("mixed.example", "10.0.0.1", "private")
    ]


def test_without_a_guard_nothing_is_refused() -> None:
    assert ssrf.admit("internal.example", ["10.0.0.1"]) == ["10.0.0.1"]
    sock = ssrf.guarded_socket((socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", 80)))
    sock.close()


def test_the_socket_check_refuses_unapproved_literals_and_lets_approved_names_through() -> None:
    info = (socket.AF_INET, socket.SOCK_STREAM, 0, "", ("10.9.8.7", 80))
    with ssrf.guarding(policy("intranet.example")) as guard:
        with pytest.raises(ssrf.RefusedAddressError):
            ssrf.guarded_socket(info)
        assert ssrf.admit("intranet.example", ["10.9.8.7"]) == ["10.9.8.7"]
        ssrf.guarded_socket(info).close()
    assert [r.address for r in guard.refused] == ["10.9.8.7"]


def test_a_bad_allow_list_entry_stops_the_settings() -> None:
    with pytest.raises(ValueError, match="neither a CIDR"):
        ApiSettings(ssrf_allow=["10.0.0.0/33x"])
