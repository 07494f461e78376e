"""The one place where names and URLs from the inventory or the API become domains.

Everything that reaches Rechecker from outside (inventory rows, API paths, CLI arguments)
passes through :func:`normalize_domain` or :func:`normalize_target`, so that the same site
is never monitored twice under two spellings and a bad row is rejected with a reason a person
can act on.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import idna

MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63
MAX_URL_LENGTH = 2048
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ALLOWED_SCHEMES = ("http", "https")


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


def _split(value: str) -> tuple[str, str]:
    raw = value.strip() if isinstance(value, str) else ""
    if not raw:
        raise InvalidDomainError(str(value), "empty name")
    if len(raw) > MAX_URL_LENGTH:
        raise InvalidDomainError(raw[:80] + "…", f"longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ch == "\x7f" for ch in raw):
        raise InvalidDomainError(raw, "contains whitespace or control characters")
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
    host = _normalize_host(raw, parts.hostname or "")
    netloc = host if port is None else f"{host}:{port}"
    url = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return host, url


def _looks_like_host_port(raw: str) -> bool:
    """``example.com:8080`` has a colon but is a host and port, not a scheme."""
    head, _, rest = raw.partition(":")
    return "." in head and rest.split("/", 1)[0].isdigit()


def _normalize_host(raw: str, host: str) -> str:
    host = host.rstrip(".")
    if not host:
        raise InvalidDomainError(raw, "no host name")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        raise InvalidDomainError(raw, "an IP address, not a domain name")
    if host.isascii():
        ascii_host = host.lower()
    else:
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii").lower()
        except (idna.IDNAError, UnicodeError) as exc:
            raise InvalidDomainError(raw, f"not a valid internationalised name: {exc}") from exc
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
    if labels[-1].isdigit():
        raise InvalidDomainError(raw, "the top-level label cannot be all digits")
    return ascii_host
