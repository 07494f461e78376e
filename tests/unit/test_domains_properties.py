"""Properties of domain normalisation, checked with hypothesis over hostile and near-valid input.

Every name from outside passes through ``rechecker.domains``; if it ever returned a name the
store or DNS cannot take, raised something other than InvalidDomainError, or gave two answers
for one site, a sync or an API call would fail instead of rejecting one row. The examples are
derandomized so that CI runs the same ones every time and a failure reproduces.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains

from rechecker.domains import (
    MAX_DOMAIN_LENGTH,
    MAX_URL_LENGTH,
    InvalidDomainError,
    Target,
    normalize_domain,
    normalize_target,
)

PROPERTY = settings(
    max_examples=600,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_LDH = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

#: Characters that make names interesting: the URL delimiters, dots of other scripts, IDN
#: letters, case-folding traps, invisible and control characters, shell and SQL metacharacters.
HOSTILE_ALPHABET = (
    "abcxyzABCXYZ0129-._"
    ":/@[]%?#\\ "
    "'\";|&$`(){}<>*!=+,~"
    "\x00\t\n\r\x7f\x1b"
    "\u3002\uff0e\uff61"  # dots IDNA maps to "."
    "äöüßéñøłαβγабвж中文한"
    "İıſﬀＡＢ１"  # case-folding and compatibility traps
    "\u200b\u200c\u200d\u00ad\ufeff\u2028\ufffd"  # invisible, joiners, separators, U+FFFD
)
SCHEMES = ["", "http://", "https://", "HTTP://", "ftp://", "file://", "javascript:", "data:"]

near_names = st.text(alphabet=HOSTILE_ALPHABET, max_size=40)
# Greek and Cyrillic letters that look Latin are there on purpose: homograph names.
idn_labels = st.text(alphabet="abcäöüßéñøαβγабвж中文한-", min_size=1, max_size=20)  # noqa: RUF001
idn_names = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(idn_labels, min_size=1, max_size=4),
    st.sampled_from(["com", "de", "xn--p1ai", "рф", "中国", "test"]),
)
urls = st.builds(
    lambda scheme, userinfo, host, port, path: f"{scheme}{userinfo}{host}{port}{path}",
    st.sampled_from(SCHEMES),
    st.sampled_from(["", "user@", "user:pw@", ":@"]),
    st.one_of(domains(max_length=MAX_DOMAIN_LENGTH), idn_names, near_names),
    st.one_of(st.just(""), st.integers(min_value=-1, max_value=70_000).map(lambda p: f":{p}")),
    st.one_of(st.just(""), st.text(alphabet=HOSTILE_ALPHABET, max_size=30).map("/{}".format)),
)
anything = st.one_of(st.text(max_size=300), near_names, idn_names, urls)


def outcome(value: str) -> str | None:
    """The normalised domain, or None when the value is rejected (the only allowed error)."""
    try:
        domain = normalize_domain(value)
    except InvalidDomainError as exc:
        assert exc.reason
        event("rejected")
        return None
    event("accepted")
    return domain


def assert_valid_domain(domain: str) -> None:
    assert len(domain) <= MAX_DOMAIN_LENGTH
    assert domain.isascii() and domain == domain.lower()
    assert not domain.endswith(".")
    labels = domain.split(".")
    assert len(labels) >= 2
    for label in labels:
        assert _LDH.match(label), label
        if label.startswith("xn--"):
            decoded = label[4:].encode("ascii").decode("punycode")
            assert decoded.isprintable() and not decoded.isascii(), label
    assert not labels[-1].isdigit()
    try:
        ipaddress.ip_address(domain)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{domain} is an IP address")


def assert_valid_target(target: Target) -> None:
    assert_valid_domain(target.domain)
    assert len(target.url) <= MAX_URL_LENGTH
    parts = urlsplit(target.url)
    assert parts.scheme in ("http", "https")
    assert parts.hostname == target.domain
    assert parts.username is None and parts.password is None
    assert parts.fragment == ""


@PROPERTY
@given(anything)
def test_output_is_always_a_valid_domain_or_a_documented_rejection(value: str) -> None:
    domain = outcome(value)
    if domain is not None:
        assert_valid_domain(domain)


@PROPERTY
@given(anything)
def test_targets_are_valid_and_their_url_names_the_domain(value: str) -> None:
    try:
        target = normalize_target(value)
    except InvalidDomainError:
        return
    assert_valid_target(target)


@PROPERTY
@given(anything)
def test_normalising_twice_changes_nothing(value: str) -> None:
    domain = outcome(value)
    if domain is None:
        return
    assert normalize_domain(domain) == domain
    target = normalize_target(value)
    assert normalize_target(target.url) == target


@PROPERTY
@given(anything)
def test_case_and_a_trailing_dot_name_the_same_site(value: str) -> None:
    domain = outcome(value)
    if domain is None:
        return
    assert normalize_domain(domain.upper()) == domain
    assert normalize_domain(domain + ".") == domain
    assert normalize_domain(f"HTTPS://{domain.upper()}.:8443/Path?Q=1") == domain


@PROPERTY
@given(st.one_of(near_names, idn_names, urls))
def test_ascii_case_never_changes_the_outcome(value: str) -> None:
    swapped = "".join(ch.swapcase() if ch.isascii() else ch for ch in value)
    assert outcome(swapped) == outcome(value)


@PROPERTY
@given(domains(max_length=MAX_DOMAIN_LENGTH))
def test_every_valid_ascii_domain_is_accepted_as_its_lowercase(name: str) -> None:
    if any(label.lower().startswith("xn--") for label in name.split(".")[:-1]):
        # A random "xn--" label is rarely valid punycode; those are the reserved prefix's.
        return
    assert normalize_domain(name) == name.lower()
    assert normalize_domain(name + ".") == name.lower()


@PROPERTY
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=59))
def test_xn_labels_are_accepted_only_as_real_punycode(tail: str) -> None:
    domain = outcome(f"xn--{tail}.example")
    if domain is not None:
        assert_valid_domain(domain)
        assert tail.encode("ascii").decode("punycode").encode("punycode") == tail.encode("ascii")
