"""The one place where names and URLs from the inventory or the API become domains.

Everything that reaches Rechecker from outside (inventory rows, API paths, CLI arguments)
passes through :func:`normalize_domain` or :func:`normalize_target`, so that the same site
is never monitored twice under two spellings and a bad row is rejected with a reason a person
can act on.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import idna

MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63
MAX_URL_LENGTH = 2048
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ALLOWED_SCHEMES = ("http", "https")
#: Unicode categories refused anywhere in a name or URL: controls, invisible formatting
#: characters, lone surrogates and line/paragraph separators. They cannot be typed on purpose,
#: they hide what a row really says, and some (NUL) break databases downstream.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: The zero-width joiners are formatting characters that some scripts need inside IDN labels;
#: IDNA's own contextual rules decide whether they are allowed where they stand.
_JOINERS = frozenset({"\u200c", "\u200d"})
#: What a text decoder puts where the bytes were not valid UTF-8.
_REPLACEMENT = "\ufffd"


class InvalidDomainError(ValueError):
    """A name or URL that cannot be monitored; ``reason`` says why in plain words."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    """What to check: the normalised domain and the URL the HTTP probe fetches."""

    domain: str
    url: str


def normalize_domain(value: str) -> str:
    """Return the lowercase ASCII (punycode) host of a name or URL, or raise InvalidDomainError."""
    host, _ = _split(value)
    return host


def normalize_target(value: str, domain: str | None = None) -> Target:
    """Normalise a URL or bare name into a :class:`Target`.

    A bare name gets ``https://NAME/``. A URL keeps its scheme, port, path and query, with
    its host rewritten in punycode. ``domain``, when given (the inventory's ``udomain``),
    names the site; otherwise the URL's host does.
    """
    host, url = _split(value)
    name = normalize_domain(domain) if domain and domain.strip() else host
    return Target(domain=name, url=url)


def shown(value: object, limit: int = 300) -> str:
    """``value`` as it is safe to echo in a response, log line or page.

    Rejected input is reported back to people, so it must not carry what makes JSON encoders,
    terminals or databases fail: control characters and lone surrogates become ``\\x..`` /
    ``\\u....`` escapes, and the text is cut to ``limit`` characters.
    """
    text = value if isinstance(value, str) else repr(value)
    cut = text[:limit]
    safe = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in cut)
    return safe + ("…" if len(text) > limit else "")


def _split(value: str) -> tuple[str, str]:
    if not isinstance(value, str):
        raise InvalidDomainError(shown(value), "not text")
    raw = value.strip()
    if not raw:
        raise InvalidDomainError(value, "empty name")
    if len(raw) > MAX_URL_LENGTH:
        raise InvalidDomainError(shown(raw, 80), f"longer than {MAX_URL_LENGTH} characters")
    if any(_refused(ch) for ch in raw):
        raise InvalidDomainError(shown(raw), "contains whitespace, control or invisible characters")
    if _REPLACEMENT in raw:
        raise InvalidDomainError(raw, "contains U+FFFD, the mark of text that was not valid UTF-8")
    if _is_ip_address(raw.strip("[]")):
        raise InvalidDomainError(raw, "an IP address, not a domain name")
    has_scheme = "://" in raw
    if (
        not has_scheme
        and re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:", raw)
        and not _looks_like_host_port(raw)
    ):
        raise InvalidDomainError(raw, f"unsupported URL scheme {raw.split(':', 1)[0]!r}")
    try:
        parts = urlsplit(raw if has_scheme else f"https://{raw}")
        port = parts.port
    except ValueError as exc:
        raise InvalidDomainError(raw, f"not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        raise InvalidDomainError(raw, f"unsupported URL scheme {scheme!r}; use http or https")
    if parts.username is not None or parts.password is not None:
        raise InvalidDomainError(raw, "URLs with credentials are not accepted")
    if port == 0:
        raise InvalidDomainError(raw, "port 0 cannot be connected to; use 1-65535")
    host = _normalize_host(raw, parts.hostname or "")
    netloc = host if port is None else f"{host}:{port}"
    url = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    if len(url) > MAX_URL_LENGTH:
        # Punycode makes an IDN host longer: the stored URL must still fit its column.
        raise InvalidDomainError(
            shown(raw, 80), f"longer than {MAX_URL_LENGTH} characters once normalised"
        )
    return host, url


def _refused(ch: str) -> bool:
    return ch.isspace() or (ch not in _JOINERS and unicodedata.category(ch) in _REFUSED_CATEGORIES)


def _is_ip_address(host: str) -> bool:
    """True for IP literals, including the legacy IPv4 forms (``127.1``, ``0x7f.1``,
    ``2130706433``) that resolvers and HTTP clients still accept as addresses."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    if not host.isascii():
        return False
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _looks_like_host_port(raw: str) -> bool:
    """``example.com:8080`` has a colon but is a host and port, not a scheme."""
    head, _, rest = raw.partition(":")
    return "." in head and rest.split("/", 1)[0].isdigit()


def _normalize_host(raw: str, host: str) -> str:
    if host.isascii():
        ascii_host = host.lower()
    else:
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii").lower()
        except (idna.IDNAError, UnicodeError) as exc:
            raise InvalidDomainError(raw, f"not a valid internationalised name: {exc}") from exc
    # One trailing dot is the DNS root (``example.com.``); more are an empty label.
    ascii_host = ascii_host.removesuffix(".")
    if not ascii_host:
        raise InvalidDomainError(raw, "no host name")
    if _is_ip_address(ascii_host.strip("[]")):
        raise InvalidDomainError(raw, "an IP address, not a domain name")
    if len(ascii_host) > MAX_DOMAIN_LENGTH:
        raise InvalidDomainError(raw, f"longer than {MAX_DOMAIN_LENGTH} characters")
    labels = ascii_host.split(".")
    if len(labels) < 2:
        raise InvalidDomainError(raw, "a single label; a domain needs at least two (name.tld)")
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidDomainError(
                raw, f"label {label!r} must be 1-{MAX_LABEL_LENGTH} letters, digits or hyphens"
            )
        if label.startswith("xn--") and not _is_punycode(label):
            raise InvalidDomainError(raw, f"label {label!r} is not valid punycode")
    if labels[-1].isdigit():
        raise InvalidDomainError(raw, "the top-level label cannot be all digits")
    return ascii_host


def _is_punycode(label: str) -> bool:
    """An ``xn--`` label must be the one encoding of a printable non-ASCII name, or DNS and
    people read it differently.

    Only the punycode encoding is checked, not IDNA2008's code point rules: names registered
    under IDNA2003 (``xn--ls8h.la``) are still live and must stay monitorable.
    """
    encoded = label[4:]
    try:
        decoded = encoded.encode("ascii").decode("punycode")
    except UnicodeError:
        return False
    return (
        not decoded.isascii()
        and decoded.isprintable()
        and decoded.encode("punycode").decode("ascii") == encoded
    )
