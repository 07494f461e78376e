"""Domain normalisation: the one gate every name from outside passes through."""

from __future__ import annotations

import pytest

from rechecker.domains import InvalidDomainError, normalize_domain, normalize_target, shown


@pytest.mark.parametrize(
    ("value", "domain", "url"),
    [
        ("Example.COM.", "example.com", "https://example.com/"),
        ("  example.com  ", "example.com", "https://example.com/"),
        ("http://domain.com/?lid=", "domain.com", "http://domain.com/?lid="),
        ("https://EXAMPLE.com:8443/x?y=1#frag", "example.com", "https://example.com:8443/x?y=1"),
        ("example.com:8080", "example.com", "https://example.com:8080/"),
        ("bücher.de", "xn--bcher-kva.de", "https://xn--bcher-kva.de/"),
        ("HTTP://Sub.Example.org/path", "sub.example.org", "http://sub.example.org/path"),
        ("Bücher.DE.", "xn--bcher-kva.de", "https://xn--bcher-kva.de/"),
        ("XN--BCHER-KVA.de", "xn--bcher-kva.de", "https://xn--bcher-kva.de/"),
        ("ＥＸＡＭＰＬＥ．com", "example.com", "https://example.com/"),  # noqa: RUF001
        ("example。com。", "example.com", "https://example.com/"),
        ("xn--ls8h.la", "xn--ls8h.la", "https://xn--ls8h.la/"),
        ("HTTPS://EXAMPLE.COM.:443/A?B=C", "example.com", "https://example.com:443/A?B=C"),
        ("straße.de", "xn--strae-oqa.de", "https://xn--strae-oqa.de/"),
    ],
)
def test_normalises(value: str, domain: str, url: str) -> None:
    target = normalize_target(value)
    assert (target.domain, target.url) == (domain, url)


def test_udomain_names_the_site_when_given() -> None:
    target = normalize_target("http://www.Example.com/?lid=", domain="Example.com")
    assert (target.domain, target.url) == ("example.com", "http://www.example.com/?lid=")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("javascript:alert(1)", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("ftp://example.com/", "scheme"),
        ("1.2.3.4", "IP address"),
        ("http://[::1]:80/", "IP address"),
        ("localhost", "single label"),
        ("foo bar.com", "whitespace"),
        ("http://user:secret@example.com/", "credentials"),
        ("a" * 64 + ".com", "label"),
        ("x_y.com", "label"),
        ("bü cher.de", "whitespace"),
        ("xn--.com", "label"),
        (("a" * 60 + ".") * 5 + "com", "253"),
        ("-bad.com", "label"),
        ("example.123", "top-level"),
        ("example.com; rm -rf /", "whitespace"),
        ("x' OR '1'='1.com", "whitespace"),
        ("example.com'--", "label"),
        ("a.com;ls", "label"),
        ("a.com|nc", "label"),
        ("$(reboot).example.com", "label"),
        ("`id`.example.com", "label"),
        ("example.com\r\nHost: evil.com", "whitespace"),
        ("example.com\x00", "control"),
        ("\x00", "control"),
        ("exa\u200bmple.com", "invisible"),
        ("\ud800.com", "control"),
        ("https://\ufffd.com/", "U+FFFD"),
        ("example.com..", "label"),
        ("example.com:0", "port 0"),
        ("example.com:65536", "not a valid URL"),
        ("xn--a.com", "punycode"),
        ("::1", "IP address"),
        ("[2001:db8::1]", "IP address"),
        ("http://[::ffff:127.0.0.1]:8080/", "IP address"),
        ("127.1", "IP address"),
        ("0x7f.0.0.1", "IP address"),
        ("http://2130706433/", "IP address"),
        ("data:text/html,<script>alert(1)</script>", "scheme"),
        ("javascript://example.com/%0aalert(1)", "scheme"),
        ("http://:pw@example.com/", "credentials"),
        ("https://example.com\\@evil.com/", "credentials"),
        ("a" * 2049, "2048"),
        ("https://" + "ü." * 30 + "de/" + "p" * 1975, "once normalised"),
    ],
)
def test_rejects_with_a_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidDomainError) as caught:
        normalize_domain(value)
    assert reason in caught.value.reason


def test_rejected_inventory_rows_never_show_a_password() -> None:
    from rechecker.inventory.base import InventoryRow, normalize_rows

    read = normalize_rows([InventoryRow("7", "http://admin:hunter2@example.com/", None)])
    assert [r.value for r in read.rejected] == ["http://***@example.com/"]


def test_shown_makes_rejected_input_safe_to_echo() -> None:
    assert shown("ok\x00\ud800\n") == "ok\\x00\\ud800\\n"
    assert shown("x" * 400) == "x" * 300 + "…"
    assert shown(12) == "12"
