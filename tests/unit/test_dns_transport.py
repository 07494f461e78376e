"""The DNS transport's own reading of replies must say exactly what dnspython says.

The fast path (A, AAAA, CNAME read straight from the wire) is compared with dnspython
parsing the same message, so stored records do not change with the transport.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from rechecker.probes.dns_transport import (
    AAAA,
    CNAME,
    A,
    DnsTransportError,
    _parse_fully,
    encode_name,
    parse_reply,
)

QNAME = "www.Example.test."


def _reply(
    answers: list[tuple[str, int, str, list[str]]], *, rcode: int = 0, qtype: str = "A"
) -> tuple[dns.message.Message, bytes]:
    query = dns.message.make_query(QNAME, qtype)
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    for owner, ttl, rdtype, values in answers:
        response.answer.append(dns.rrset.from_text_list(owner, ttl, "IN", rdtype, values))
    return query, response.to_wire()


def _record(ttl: int, address: bytes) -> bytes:
    """An A record owned by the question's name (a pointer to it)."""
    return b"\xc0\x0c\x00\x01\x00\x01" + ttl.to_bytes(4, "big") + b"\x00\x04" + address


CASES = {
    "one address": [(QNAME, 300, "A", ["192.0.2.1"])],
    "several addresses": [(QNAME, 60, "A", ["192.0.2.1", "192.0.2.2", "198.51.100.7"])],
    "cname chain": [
        (QNAME, 300, "CNAME", ["edge.cdn.test."]),
        ("edge.cdn.test.", 120, "CNAME", ["pop-7.cdn.test."]),
        ("pop-7.cdn.test.", 20, "A", ["203.0.113.9"]),
    ],
    "odd labels": [(QNAME, 5, "CNAME", ['we\\"ird\\(label\\).x\\@y\\$.test.'])],
    "binary label": [(QNAME, 5, "CNAME", ["\\000\\255a\\032b.test."])],
    "no records": [],
}


@pytest.mark.parametrize("answers", CASES.values(), ids=CASES.keys())
def test_addresses_and_aliases_read_as_dnspython_reads_them(
    answers: list[tuple[str, int, str, list[str]]],
) -> None:
    query, wire = _reply(answers)
    fast = parse_reply(wire, query.id, encode_name(QNAME), A)
    assert fast is not None
    assert fast.records == _parse_fully(wire).records
    assert fast.rcode == 0 and not fast.truncated


def test_aaaa_text_matches_dnspython() -> None:
    values = ["2001:db8::1", "::ffff:192.0.2.1", "fe80::1:0:0:1", "2001:db8:0:0:1::"]
    query, wire = _reply([(QNAME, 30, "AAAA", values)], qtype="AAAA")
    fast = parse_reply(wire, query.id, encode_name(QNAME), AAAA)
    assert fast is not None
    assert fast.records == _parse_fully(wire).records
    assert sorted(r.value for r in fast.records[AAAA]) == sorted(values)


def test_a_set_takes_its_smallest_ttl_and_each_address_once() -> None:
    query, wire = _reply([(QNAME, 300, "A", ["192.0.2.1"])])
    # Append two more records of the same set by hand: a lower TTL, then a duplicate.
    body = wire + _record(40, bytes([192, 0, 2, 2])) + _record(90, bytes([192, 0, 2, 1]))
    body = body[:6] + (3).to_bytes(2, "big") + body[8:]
    fast = parse_reply(body, query.id, encode_name(QNAME), A)
    assert fast is not None
    assert [(r.value, r.ttl) for r in fast.records[A]] == [("192.0.2.1", 40), ("192.0.2.2", 40)]
    assert fast.records == _parse_fully(body).records


def test_other_types_are_read_by_dnspython() -> None:
    query, wire = _reply([(QNAME, 300, "MX", ["10 mail.example.test."])], qtype="MX")
    answer = parse_reply(wire, query.id, encode_name(QNAME), int(dns.rdatatype.MX))
    assert answer is not None
    # dnspython compresses the target against the question, keeping the question's case.
    values = [r.value.lower() for r in answer.records[int(dns.rdatatype.MX)]]
    assert values == ["10 mail.example.test."]


def test_response_codes_are_kept() -> None:
    query, wire = _reply([], rcode=dns.rcode.NXDOMAIN)
    answer = parse_reply(wire, query.id, encode_name(QNAME), A)
    assert answer is not None and answer.rcode == dns.rcode.NXDOMAIN and answer.records == {}


def test_replies_to_other_questions_are_not_taken() -> None:
    query, wire = _reply([(QNAME, 300, "A", ["192.0.2.1"])])
    assert parse_reply(wire, (query.id + 1) % 65536, encode_name(QNAME), A) is None
    assert parse_reply(wire, query.id, encode_name("other.test"), A) is None
    assert parse_reply(wire, query.id, encode_name(QNAME), AAAA) is None
    # The name is compared without regard to case, as servers may echo it changed.
    assert parse_reply(wire, query.id, encode_name(QNAME.upper()), A) is not None
    as_query = dns.message.make_query(QNAME, "A")
    assert parse_reply(as_query.to_wire(), as_query.id, encode_name(QNAME), A) is None


def test_truncated_reply_is_flagged_not_read() -> None:
    query, wire = _reply([(QNAME, 300, "A", ["192.0.2.1"])])
    flags = int.from_bytes(wire[2:4], "big") | dns.flags.TC
    cut = wire[:2] + flags.to_bytes(2, "big") + wire[4:-3]
    answer = parse_reply(cut, query.id, encode_name(QNAME), A)
    assert answer is not None and answer.truncated and answer.records == {}


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda w: w[: len(w) - 2], id="cut record"),
        pytest.param(lambda w: w[:8], id="cut header"),
        pytest.param(lambda w: w[:-6] + b"\x00\x03" + w[-4:-1], id="bad address length"),
    ],
)
def test_malformed_replies_raise(mangle: object) -> None:
    query, wire = _reply([(QNAME, 300, "A", ["192.0.2.1"])])
    assert callable(mangle)
    with pytest.raises(DnsTransportError):
        parse_reply(mangle(wire), query.id, encode_name(QNAME), A)


def test_compression_loop_is_refused() -> None:
    query, wire = _reply([])
    qname = encode_name(QNAME)
    # One CNAME whose target is a pointer to itself.
    pointer_at = len(wire) + 12
    record = b"\xc0\x0c" + CNAME.to_bytes(2, "big") + b"\x00\x01" + (5).to_bytes(4, "big")
    record += b"\x00\x02" + (0xC000 | pointer_at).to_bytes(2, "big")
    body = wire[:6] + b"\x00\x01" + wire[8:] + record
    with pytest.raises(DnsTransportError, match="compression loop"):
        parse_reply(body, query.id, qname, A)


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("example.test", b"\x07example\x04test\x00"),
        ("example.test.", b"\x07example\x04test\x00"),
        ("xn--bcher-kva.test", b"\x0dxn--bcher-kva\x04test\x00"),
        ("bücher.test", dns.name.from_text("bücher.test").to_wire()),
    ],
)
def test_names_encode_as_dnspython_encodes_them(name: str, wire: bytes) -> None:
    assert encode_name(name) == wire


@pytest.mark.parametrize("name", ["a" * 64 + ".test", ".".join(["abcdefghi"] * 30), "a..b"])
def test_invalid_names_raise(name: str) -> None:
    with pytest.raises(DnsTransportError, match="invalid name"):
        encode_name(name)
